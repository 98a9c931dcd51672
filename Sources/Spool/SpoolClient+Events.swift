import Hiredis
import Synchronization

extension SpoolClient {
    /// Lists a job in its queue's `watched` set for `millis`, so that the
    /// scripts publish its events on its own channel too (watch.lua).
    func follow(job id: String, queue: String, millis: Int) async throws(SpoolError) {
        let code = try await evalInt(Scripts.watch, queue: queue, args: [id, String(millis)], operation: "watch", job: id)
        guard code == 1 || code == 2 else { throw SpoolError.script(code: code, "watch", queue: queue, job: id) }
    }

    /// Renews the listing and asks whether the job's record still exists, in
    /// one round trip: `lapsed` when the job was no longer listed (events
    /// published meanwhile missed its channel); nil when Redis did not answer.
    func renewFollow(job id: String, queue: String, millis: Int) async -> (lapsed: Bool, exists: Bool)? {
        let k = keys(queue)
        guard
            let replies = try? await redis.send([
                .script(Scripts.watch, keys: [k.prefix], args: [id, String(millis)]), .command(["EXISTS", k.job(id)]),
            ]), replies.count == 2, let code = replies[0].int, code == 1 || code == 2, let exists = replies[1].int
        else { return nil }
        return (code == 2, exists == 1)
    }

    /// A job's events: first a `snapshot` of its current record, then every
    /// later event in order, ending after the terminal one (completed, dead,
    /// cancelled). It subscribes, then lists the job as followed (scripts
    /// publish on a job's own channel only then), then reads the snapshot, and
    /// drops events not newer than what it has shown (by `seq`), so a reader
    /// that joins at any moment, even as the job finishes, ends with the
    /// terminal event. After a dropped connection it resubscribes, follows
    /// again and reads the record again.
    ///
    /// Each listing lasts `followFor` (1 ms to 1 hour) and is renewed every
    /// third of it while the stream runs; one left behind by a reader that
    /// died lapses after it.
    ///
    /// Throws `jobNotFound` for an unknown id, and later when the job is
    /// purged (a `purged` event) or its record disappears otherwise (seen at
    /// the next renewal); `unavailable` when Redis cannot be reached at the
    /// start.
    public func events(job id: String, followFor: Duration = .seconds(60)) -> AsyncThrowingStream<JobEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<JobEvent, any Error>.makeStream()
        let followMillis = min(3_600_000, max(1, Int(followFor / .milliseconds(1))))
        guard let queue = JobID.queue(of: id) else {
            continuation.finish(throwing: SpoolError(.invalidInput, "watch", job: id, "not a job id (expected QUEUE.SUFFIX)"))
            return stream
        }
        let feed = JobFeed(continuation: continuation)
        let reader = SpoolClient(configuration: configuration, clock: clock, label: "spool.events.snapshot")
        let subscriber = RedisSubscriber(url: configuration.redisURL, channels: [keys(queue).events(job: id)], timeouts: configuration.timeouts) {
            event in
            switch event {
            case .subscribed:
                let generation = feed.resubscribed()
                Task {
                    do {
                        try await reader.follow(job: id, queue: queue, millis: followMillis)
                        feed.snapshot(try await reader.job(id), generation: generation)
                    } catch let error as SpoolError {
                        feed.fail(error.during("watch"))
                    } catch {
                        feed.fail(error)
                    }
                }
            case .message(_, let payload):
                for event in JobEvent.decodeAll(payload) {
                    if event.event == "purged" {
                        feed.fail(SpoolError(.jobNotFound, "watch", queue: queue, job: id, "the job was purged"))
                    } else {
                        feed.live(event)
                    }
                }
            case .disconnected(let error):
                feed.disconnected(SpoolError.from(error, "watch", queue: queue, job: id))
            }
        }
        // Renewed while the stream runs; a failed renewal is left to the next
        // one, or to the resubscription that follows a lost connection. A
        // listing that had lapsed is made good by reading the record again;
        // a record gone (deleted by hand, expired) ends the stream: no event
        // would ever come.
        let renewal = Task {
            // On a fixed cadence (a slow answer does not push the next
            // renewal back): the listing lapses if a renewal comes late.
            let period = Duration.milliseconds(max(1, followMillis / 3))
            var due = ContinuousClock.now
            renewing: while !Task.isCancelled {
                due = max(due + period, ContinuousClock.now)
                try? await Task.sleep(until: due, clock: .continuous)
                if Task.isCancelled { break }
                guard let renewed = await reader.renewFollow(job: id, queue: queue, millis: followMillis) else { continue }
                if !renewed.exists {
                    // A script that ends a job may delete its record (retention
                    // 0) in the call that publishes the terminal event: let that
                    // event arrive first.
                    try? await Task.sleep(for: .milliseconds(500))
                    feed.fail(SpoolError(.jobNotFound, "watch", queue: queue, job: id, "the job no longer exists"))
                    break
                }
                if renewed.lapsed {
                    // This renewal came too late (a stalled or suspended
                    // process): events in the gap never reached the channel.
                    // The record stands in for them, as after a reconnect;
                    // live events wait until it is read.
                    let generation = feed.resubscribed()
                    while !Task.isCancelled {
                        do {
                            feed.snapshot(try await reader.job(id), generation: generation)
                            break
                        } catch let error as SpoolError where error.code == .jobNotFound {
                            feed.fail(SpoolError(.jobNotFound, "watch", queue: queue, job: id, "the job no longer exists"))
                            break renewing
                        } catch {
                            try? await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
            }
        }
        let stop: @Sendable () -> Void = {
            renewal.cancel()
            subscriber.stop()
        }
        feed.onEnd = stop
        continuation.onTermination = { _ in stop() }
        subscriber.start()
        return stream
    }

    /// A queue's live events, from now on (no snapshot; events published while
    /// the connection was down are missed). Runs until the consumer stops.
    public func events(queue: String) -> AsyncThrowingStream<JobEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<JobEvent, any Error>.makeStream()
        guard Names.isValid(queue) else {
            continuation.finish(throwing: SpoolError(.invalidInput, "events", queue: queue, "queue name \(Names.rule)"))
            return stream
        }
        let everSubscribed = Atomic<Bool>(false)
        let subscriber = RedisSubscriber(url: configuration.redisURL, channels: [keys(queue).events], timeouts: configuration.timeouts) { event in
            switch event {
            case .subscribed: everSubscribed.store(true, ordering: .relaxed)
            case .message(_, let payload): for event in JobEvent.decodeAll(payload) { continuation.yield(event) }
            case .disconnected(let error):
                if !everSubscribed.load(ordering: .relaxed) {
                    continuation.finish(throwing: SpoolError.from(error, "events", queue: queue))
                }
            }
        }
        continuation.onTermination = { _ in subscriber.stop() }
        subscriber.start()
        return stream
    }
}

/// Orders a job's live events against snapshots of its record.
final class JobFeed: Sendable {
    private struct State {
        var generation = 0
        var snapshotRead = false
        var everSubscribed = false
        var pending: [JobEvent] = []
        var lastSeq = 0
        var done = false
    }

    private let state = Mutex(State())
    private let continuation: AsyncThrowingStream<JobEvent, any Error>.Continuation
    private let end = Mutex<(@Sendable () -> Void)?>(nil)

    init(continuation: AsyncThrowingStream<JobEvent, any Error>.Continuation) {
        self.continuation = continuation
    }

    /// Called once the stream is over, to stop the subscription.
    var onEnd: (@Sendable () -> Void)? {
        get { end.withLock { $0 } }
        set { end.withLock { $0 = newValue } }
    }

    /// A (re)subscription happened: hold live events until the record is read.
    func resubscribed() -> Int {
        state.withLock { s in
            s.generation += 1
            s.snapshotRead = false
            s.everSubscribed = true
            return s.generation
        }
    }

    func snapshot(_ job: Job, generation: Int) {
        let finished = state.withLock { s -> Bool in
            guard !s.done, s.generation == generation else { return false }
            s.snapshotRead = true
            // The first snapshot is always shown (a record written without
            // `seq` reads as 0); later ones only when events were missed.
            if s.lastSeq == 0 || job.seq > s.lastSeq {
                s.lastSeq = max(s.lastSeq, job.seq)
                continuation.yield(JobEvent(snapshot: job))
                if job.state.isTerminal {
                    s.done = true
                    continuation.finish()
                }
            }
            let held = s.pending.sorted { ($0.seq ?? 0) < ($1.seq ?? 0) }
            s.pending = []
            for event in held where !s.done { emit(event, &s) }
            return s.done
        }
        if finished { onEnd?() }
    }

    func live(_ event: JobEvent) {
        let finished = state.withLock { s -> Bool in
            guard !s.done else { return false }
            if !s.snapshotRead {
                s.pending.append(event)
                return false
            }
            emit(event, &s)
            return s.done
        }
        if finished { onEnd?() }
    }

    /// Before the first subscription, a lost connection ends the stream; after,
    /// the subscriber reconnects and a new snapshot fills any gap.
    func disconnected(_ error: SpoolError) {
        let fatal = state.withLock { s -> Bool in
            if s.done || s.everSubscribed { return false }
            s.done = true
            return true
        }
        if fatal {
            continuation.finish(throwing: error)
            onEnd?()
        }
    }

    func fail(_ error: any Error) {
        let first = state.withLock { s -> Bool in
            defer { s.done = true }
            return !s.done
        }
        if first {
            continuation.finish(throwing: error)
            onEnd?()
        }
    }

    /// Yields `event` unless it is not newer than what was shown; finishes after a terminal one.
    private func emit(_ event: JobEvent, _ s: inout State) {
        let seq = event.seq ?? (s.lastSeq + 1)
        guard seq > s.lastSeq else { return }
        s.lastSeq = seq
        continuation.yield(event)
        if event.isTerminal {
            s.done = true
            continuation.finish()
        }
    }
}
