import Hummingbird
import Logging
import Spool

/// Turns every error a route throws into the API's JSON error response, tells
/// 404 from 405, counts Redis failures and logs server-side errors (with
/// secrets removed).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable
    let redactor: Redactor
    let metrics: QueueMetrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let api = describe(error, request)
            if let spool = error as? SpoolError, spool.code == .unavailable || spool.code == .redis { metrics.redisError() }
            switch api.code {
            case .unavailable:
                logger.warning("\(request.method) \(request.uri.path): \(redactor.redact(api.message))", metadata: ["status": "503"])
            case .internal:
                logger.error(
                    "\(request.method) \(request.uri.path): \(redactor.redact(api.message))", metadata: ["status": "\(api.code.status.code)"])
            default:
                logger.debug("\(request.method) \(request.uri.path): \(redactor.redact(api.message))")
            }
            let response = api.response(redactor: redactor)
            return request.method == .head ? Routes.head(of: response) : response
        }
    }

    private func describe(_ error: any Error, _ request: Request) -> APIError {
        guard let http = error as? HTTPError, http.status == .notFound else { return APIError.from(error) }
        // Only the router throws HTTPError 404: the path or the method is unknown.
        let allowed = routes.methods(for: request.uri.path)
        if allowed.isEmpty {
            return APIError(.notFound, "no such resource: \(request.method) \(Self.shown(request.uri.path))")
        }
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return APIError(.methodNotAllowed, "\(Self.shown(request.uri.path)) accepts \(list), not \(request.method)", headers: [.allow: list])
    }

    /// A path as an error message quotes it: at most 200 characters, so a
    /// 20 KB path does not come back as a 20 KB answer.
    static func shown(_ path: String) -> String {
        path.count <= 200 ? path : path.prefix(199) + "…"
    }
}
