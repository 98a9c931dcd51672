import Hummingbird
import Spool

/// Server-Sent Events endpoints.
extension Routes {
    /// A job's stream: its snapshot, then every event until the terminal one.
    func jobEvents(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.jobID(context)
        let client = pool.client
        _ = try await client.job(id)  // 404 and 503 as JSON, before the stream starts
        return try stream.response(request, events: client.events(job: id), ids: true)
    }

    /// A queue's live events, until the client goes away.
    func queueEvents(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let queue = Self.parameter("queue", context)
        let client = try await reader.requireQueue(queue)
        return try stream.response(request, events: client.events(queue: queue), ids: false)
    }

    /// Live events of the queues named by `?queue=` (repeated, 1 to 100), in
    /// one stream: the dashboard's.
    func events(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let queues = request.uri.queryParameters[values: "queue"].map(String.init)
        guard (1...100).contains(queues.count) else { throw APIError(.badRequest, "name 1 to 100 queues with ?queue=NAME") }
        for queue in queues where !Names.isValid(queue) {
            throw APIError(.badRequest, "queue name \"\(queue)\" is not valid: it \(Names.rule)")
        }
        if case .failure(let error) = await reader.ping() { throw error }  // 503 as JSON while Redis is down
        return try stream.response(request, events: QueueEvents.stream(configuration: server.configuration, queues: queues), ids: false)
    }
}
