import Foundation
import Hummingbird
import Spool

/// GET endpoints: health, queues, jobs, workers, metrics.
extension Routes {
    struct Health: Encodable {
        struct Redis: Encodable {
            let ok: Bool
            let latencyMs: Double?
            enum CodingKeys: String, CodingKey {
                case ok
                case latencyMs = "latency_ms"
            }
        }
        let status: String
        let redis: Redis
        let error: APIError.ErrorBody.Detail?
    }

    /// 200 when Redis answers PING, 503 (with the error) when it does not.
    func health(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        switch await reader.ping() {
        case .success(let ms):
            return Self.json(Health(status: "ok", redis: .init(ok: true, latencyMs: (ms * 1000).rounded() / 1000), error: nil))
        case .failure(let error):
            server.metrics.redisError()
            let api = APIError(error)
            let detail = APIError.ErrorBody.Detail(code: APIError.Code.unavailable.rawValue, message: redactor.redact(api.message))
            return Self.json(
                Health(status: "unavailable", redis: .init(ok: false, latencyMs: nil), error: detail), status: .serviceUnavailable,
                headers: [.retryAfter: "1"])
        }
    }

    struct QueueList: Encodable { let queues: [QueueResource] }

    func queues(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.json(QueueList(queues: try await reader.queues()))
    }

    func queue(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.json(try await reader.queue(Self.parameter("queue", context)))
    }

    struct JobPage: Encodable {
        let queue: String
        let state: String
        let offset: Int
        let limit: Int
        let total: Int
        let jobs: [JobResource]
    }

    /// `?state=` (default waiting), `offset` and `limit` (1…500, default 50).
    func jobs(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let queue = Self.parameter("queue", context)
        let stateText = request.uri.queryParameters["state"].map(String.init) ?? "waiting"
        guard let state = JobState(rawValue: stateText) else {
            throw APIError(.badRequest, "state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let offset = try Self.intQuery(request, "offset", default: 0, in: 0...options.maxOffset)
        let limit = try Self.intQuery(request, "limit", default: 50, in: 1...500)
        let page = try await reader.jobs(queue, state: state, offset: offset, limit: limit)
        return Self.json(
            JobPage(queue: queue, state: state.rawValue, offset: offset, limit: limit, total: page.total, jobs: page.jobs.map(JobResource.init)))
    }

    func job(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.json(JobResource(try await reader.job(try Self.jobID(context))))
    }

    struct WorkerList: Encodable { let workers: [WorkerResource] }

    func workers(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.json(WorkerList(workers: try await reader.workers().map(WorkerResource.init)))
    }

    /// Prometheus text; answers even while Redis is down (`spool_redis_up 0`).
    func prometheus(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let text = await server.metrics.scrape(reader)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
