import Hiredis
import Spool
import Synchronization

/// Live events of several queues over one subscription (the dashboard's
/// `GET /events?queue=…`): browsers keep few connections per server, so one
/// stream for all queues rather than one per queue.
enum QueueEvents {
    /// Like `SpoolClient.events(queue:)` for several queues: live only, runs
    /// until the consumer stops; fails only if the first connection fails.
    static func stream(configuration: SpoolConfiguration, queues: [String]) -> AsyncThrowingStream<JobEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<JobEvent, any Error>.makeStream()
        let channels = queues.map { QueueKeys(prefix: configuration.prefix, queue: $0).events }
        let everSubscribed = Atomic<Bool>(false)
        let subscriber = RedisSubscriber(url: configuration.redisURL, channels: channels, timeouts: configuration.timeouts) { event in
            switch event {
            case .subscribed: everSubscribed.store(true, ordering: .relaxed)
            case .message(_, let payload): for event in JobEvent.decodeAll(payload) { continuation.yield(event) }
            case .disconnected(let error):
                if !everSubscribed.load(ordering: .relaxed) {
                    continuation.finish(throwing: SpoolError(.unavailable, "events", error.description))
                }
            }
        }
        continuation.onTermination = { _ in subscriber.stop() }
        subscriber.start()
        return stream
    }
}
