import Foundation
import Hummingbird
import Spool

/// The API's routes in one table: method, path, whether the bearer token
/// guards it, and the handler. The table also answers 405 for known paths.
struct Routes: Sendable {
    typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response

    struct Route: Sendable {
        let method: HTTPRequest.Method
        let path: String
        /// Needs the bearer token when one is configured.
        let guarded: Bool
        let handler: Handler

        /// GET routes answer HEAD too (the same status and headers, no body),
        /// but for event streams: their handlers start a subscription.
        var answersHead: Bool { method == .get && !path.hasSuffix("events") }
    }

    let server: SpoolServer
    let redactor: Redactor
    let token: BearerToken?
    let stream: EventStream
    var reader: StatusReader { server.reader }
    var pool: ClientPool { server.reader.pool }
    var options: ServerOptions { server.options }

    init(server: SpoolServer, redactor: Redactor) {
        self.server = server
        self.redactor = redactor
        self.token = server.options.token.map(BearerToken.init)
        self.stream = EventStream(
            keepAlive: .milliseconds(Int(server.options.keepAliveSeconds * 1000)), redactor: redactor,
            slots: StreamSlots(limit: server.options.maxStreams))
    }

    var all: [Route] {
        [
            Route(method: .get, path: "/", guarded: false, handler: dashboard),
            Route(method: .get, path: "/dashboard.js", guarded: false, handler: dashboardScript),
            Route(method: .get, path: "/dashboard.css", guarded: false, handler: dashboardStyle),
            Route(method: .get, path: "/openapi.json", guarded: false, handler: openAPI),
            Route(method: .get, path: "/healthz", guarded: false, handler: health),
            Route(method: .get, path: "/metrics", guarded: false, handler: prometheus),
            Route(method: .get, path: "/queues", guarded: false, handler: queues),
            Route(method: .get, path: "/queues/:queue", guarded: false, handler: queue),
            Route(method: .get, path: "/queues/:queue/jobs", guarded: false, handler: jobs),
            Route(method: .post, path: "/queues/:queue/jobs", guarded: true, handler: enqueue),
            Route(method: .post, path: "/queues/:queue/jobs/batch", guarded: true, handler: enqueueBatch),
            Route(method: .post, path: "/queues/:queue/pause", guarded: true, handler: pause),
            Route(method: .post, path: "/queues/:queue/resume", guarded: true, handler: resume),
            Route(method: .post, path: "/queues/:queue/dead/retry", guarded: true, handler: retryDead),
            Route(method: .get, path: "/queues/:queue/events", guarded: false, handler: queueEvents),
            Route(method: .get, path: "/jobs/:id", guarded: false, handler: job),
            Route(method: .post, path: "/jobs/:id/cancel", guarded: true, handler: cancel),
            Route(method: .post, path: "/jobs/:id/retry", guarded: true, handler: retry),
            Route(method: .get, path: "/jobs/:id/events", guarded: false, handler: jobEvents),
            Route(method: .get, path: "/workers", guarded: false, handler: workers),
            Route(method: .get, path: "/events", guarded: false, handler: events),
        ]
    }

    var table: RouteTable {
        var table = RouteTable()
        for route in all {
            table.add(route.method, route.path)
            if route.answersHead { table.add(.head, route.path) }
        }
        return table
    }

    func register(on router: Router<BasicRequestContext>) {
        for route in all {
            let handler = route.handler
            let token = route.guarded ? self.token : nil
            router.on(RouterPath(route.path), method: route.method) { request, context in
                try token?.check(request)
                return try await handler(request, context)
            }
            if route.answersHead {
                router.on(RouterPath(route.path), method: .head) { request, context in
                    Self.head(of: try await handler(request, context))
                }
            }
        }
    }

    /// A response without its body, keeping the length the body would have.
    static func head(of response: Response) -> Response {
        var head = response.createHeadResponse()
        if let length = response.body.contentLength { head.headers[.contentLength] = String(length) }
        return head
    }

    // MARK: Helpers

    /// A JSON response.
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: WireJSON.encode(value))))
    }

    /// A path parameter, percent-decoded.
    static func parameter(_ name: String, _ context: BasicRequestContext) -> String {
        let raw = context.parameters.get(name) ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    /// A valid job id from the path, else 404 (ids look like QUEUE.SUFFIX).
    static func jobID(_ context: BasicRequestContext) throws(APIError) -> String {
        let id = parameter("id", context)
        guard JobID.queue(of: id) != nil else { throw APIError(.notFound, "no such job \"\(id)\" (job ids look like QUEUE.SUFFIX)") }
        return id
    }

    /// A query parameter that is an integer in `range`, else 400.
    static func intQuery(_ request: Request, _ name: String, default value: Int, in range: ClosedRange<Int>) throws(APIError) -> Int {
        guard let text = request.uri.queryParameters[Substring(name)] else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw APIError(.badRequest, "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}
