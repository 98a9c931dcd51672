import Foundation
import Synchronization

/// A pub/sub subscription on its own thread and its own connection.
///
/// 1. Connects, sends SUBSCRIBE for every channel and waits for the
///    confirmations, then reports ``Event/subscribed`` (after every reconnect
///    too, so the owner can re-read whatever state it pairs with the stream).
/// 2. Waits on the socket with poll(2) in short slices, so `stop()` is seen
///    within `pollInterval` without a read timeout ending the subscription.
/// 3. Drains every complete reply hiredis has buffered before polling again.
/// 4. On a lost connection it reports ``Event/disconnected(_:)`` and reconnects
///    with capped backoff until stopped.
public final class RedisSubscriber: Sendable {
    public enum Event: Sendable {
        case subscribed
        case message(channel: String, payload: String)
        case disconnected(RedisError)
    }

    public let url: RedisURL
    public let channels: [String]
    private let timeouts: RedisTimeouts
    private let pollInterval: Double
    private let handler: @Sendable (Event) -> Void
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    public init(
        url: RedisURL, channels: [String], timeouts: RedisTimeouts = RedisTimeouts(), pollInterval: Double = 0.1,
        handler: @escaping @Sendable (Event) -> Void
    ) {
        self.url = url
        self.channels = channels
        self.timeouts = timeouts
        self.pollInterval = pollInterval
        self.handler = handler
    }

    /// Starts the subscription thread.
    public func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "spool.subscriber"
        thread.start()
    }

    /// Asks the thread to end; it does within `pollInterval`. No event follows
    /// once `stop()` returns... except one already being delivered.
    public func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    /// Stops and waits for the thread to end.
    public func stopAndWait() {
        stop()
        finished.wait()
    }

    public var isStopped: Bool { stopped.load(ordering: .relaxed) }

    private func run() {
        var backoff = Backoff(base: 0.05, cap: 2)
        while !isStopped {
            do {
                try session { backoff.reset() }
            } catch {
                if isStopped { return }
                handler(.disconnected(error))
                let pause = backoff.next()
                let until = Date().addingTimeInterval(pause)
                while !isStopped && Date() < until { Thread.sleep(forTimeInterval: min(pollInterval, pause)) }
                continue
            }
            return
        }
    }

    /// One connection's life: subscribe, then deliver until stopped or broken.
    private func session(onSubscribed: () -> Void) throws(RedisError) {
        let conn = try RedisConnection(url: url, timeouts: timeouts)
        defer { conn.close() }
        try conn.append([["SUBSCRIBE"] + channels])
        try conn.flush()
        var confirmed = 0
        while confirmed < channels.count {
            if isStopped { return }
            while let reply = try conn.bufferedReply() {
                if case .array(let parts) = reply, parts.first?.string == "subscribe" {
                    confirmed += 1
                } else {
                    deliver(reply)
                }
            }
            if confirmed < channels.count { _ = try conn.waitAndRead(timeout: pollInterval) }
        }
        onSubscribed()
        handler(.subscribed)
        while !isStopped {
            while let reply = try conn.bufferedReply() {
                if isStopped { return }
                deliver(reply)
            }
            _ = try conn.waitAndRead(timeout: pollInterval)
        }
    }

    private func deliver(_ reply: RedisValue) {
        guard case .array(let parts) = reply, parts.count == 3, parts[0].string == "message",
            let channel = parts[1].string, let payload = parts[2].string
        else { return }
        handler(.message(channel: channel, payload: payload))
    }
}
