import Foundation
import Hummingbird
import ServiceLifecycle
import Spool
import Synchronization

/// Server-Sent Events over a stream of job events.
///
/// 1. Sends `retry:` and then, per event, `event: <name>`, `id: <seq>` (when
///    the event has one) and `data: <json>` (an ``EventResource``).
/// 2. Sends a `: keep-alive` comment when nothing else was sent for
///    `keepAlive` seconds.
/// 3. Ends when the events end (a job's terminal event), when the client
///    goes away, or when the server shuts down; an error in the events ends
///    the stream with an `event: error` carrying the API error JSON.
/// Whatever ends it, the events' iteration is cancelled, which stops their
/// Redis subscription.
struct EventStream: Sendable {
    let keepAlive: Duration
    let redactor: Redactor
    let slots: StreamSlots

    /// The response for `events`, which holds one of the stream slots until it ends.
    /// `ids`: send each event's `seq` as its SSE id (a job's stream only;
    /// seq is per job, so a queue's stream has none).
    func response(_ request: Request, events: AsyncThrowingStream<JobEvent, any Error>, ids: Bool) throws(APIError) -> Response {
        // Checked here to answer 503 before the stream starts; the slot itself
        // is taken by the body, which always gives it back.
        guard slots.count < slots.limit else { throw Self.full }
        let headers: HTTPFields = [
            .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache", HTTPFields.Element.Name("X-Accel-Buffering")!: "no",
        ]
        let body = ResponseBody { [self] writer in
            guard slots.take() else {
                try await writer.write(ByteBuffer(string: Self.errorEvent(Self.full)))
                try await writer.finish(nil)
                return
            }
            defer { slots.give() }
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            let (outbox, feed) = AsyncStream<Chunk>.makeStream()
            try await request.body.consumeWithInboundCloseHandler { _ in
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { await forward(events, to: feed, ids: ids) }
                        group.addTask { await tick(feed) }
                        for await chunk in outbox {
                            try await writer.write(ByteBuffer(string: chunk.text))
                            if chunk.isLast { break }
                        }
                        group.cancelAll()
                    }
                } onGracefulShutdown: {
                    feed.finish()
                }
            } onInboundClosed: {
                feed.finish()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// What the writer sends next.
    enum Chunk: Sendable {
        case event(String)
        case keepAlive
        case end(String?)

        var text: String {
            switch self {
            case .event(let text): text
            case .keepAlive: ": keep-alive\n\n"
            case .end(let text): text ?? ""
            }
        }

        var isLast: Bool {
            if case .end = self { return true }
            return false
        }
    }

    private func forward(_ events: AsyncThrowingStream<JobEvent, any Error>, to feed: AsyncStream<Chunk>.Continuation, ids: Bool) async {
        do {
            for try await event in events { feed.yield(.event(Self.format(event, id: ids))) }
            feed.yield(.end(nil))
        } catch {
            feed.yield(.end(Self.errorEvent(APIError.from(error), redactor: redactor)))
        }
        feed.finish()
    }

    private func tick(_ feed: AsyncStream<Chunk>.Continuation) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: keepAlive) } catch { return }
            if case .terminated = feed.yield(.keepAlive) { return }
        }
    }

    static let full = APIError(.unavailable, "too many open event streams; try again later", headers: [.retryAfter: "5"])

    /// An `event: error` carrying the API error JSON.
    static func errorEvent(_ error: APIError, redactor: Redactor = Redactor(secrets: [])) -> String {
        let body = APIError.ErrorBody(error: .init(code: error.code.rawValue, message: redactor.redact(error.message)))
        return "event: error\ndata: " + String(decoding: WireJSON.encode(body), as: UTF8.self) + "\n\n"
    }

    /// One event in the text/event-stream format.
    static func format(_ event: JobEvent, id: Bool) -> String {
        var text = "event: \(event.event)\n"
        if id, let seq = event.seq { text += "id: \(seq)\n" }
        text += "data: " + String(decoding: WireJSON.encode(EventResource(event)), as: UTF8.self) + "\n\n"
        return text
    }
}

/// Counts open event streams against the limit.
final class StreamSlots: Sendable {
    private let open = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func take() -> Bool {
        if open.add(1, ordering: .relaxed).newValue <= limit { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    func give() { open.subtract(1, ordering: .relaxed) }

    var count: Int { open.load(ordering: .relaxed) }
}
