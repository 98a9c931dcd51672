import Synchronization

/// Coalesces a running job's progress reports.
///
/// 1. `report` keeps only the newest value and, if no sender is running,
///    starts one.
/// 2. The sender sends the newest value, waits until `interval` has passed
///    since that send, and repeats while there is something new; so a handler
///    reporting thousands of times a second costs at most 1/interval publishes.
/// 3. `finish` waits for the sender, so the last value is stored before the
///    job's outcome.
final class ProgressReporter: Sendable {
    typealias Send = @Sendable (_ percent: Double, _ message: String) async -> Void

    private struct State {
        var pending: (percent: Double, message: String)?
        var sender: Task<Void, Never>?
        var lastSend: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    private let interval: Duration
    private let send: Send

    init(interval: Duration = .milliseconds(50), send: @escaping Send) {
        self.interval = interval
        self.send = send
    }

    func report(_ percent: Double, _ message: String) {
        state.withLock { s in
            s.pending = (percent, message)
            if s.sender == nil { s.sender = Task { await self.drain() } }
        }
    }

    /// Waits until every reported value has been sent.
    func finish() async {
        while let sender = state.withLock({ $0.sender }) {
            await sender.value
        }
    }

    private func drain() async {
        while true {
            let wait = state.withLock { s -> Duration? in
                guard let last = s.lastSend else { return nil }
                let due = last.advanced(by: interval)
                return due > .now ? ContinuousClock.now.duration(to: due) : nil
            }
            if let wait { try? await Task.sleep(for: wait) }
            let next = state.withLock { s -> (percent: Double, message: String)? in
                let value = s.pending
                s.pending = nil
                if value == nil { s.sender = nil }
                return value
            }
            guard let next else { return }
            await send(next.percent, next.message)
            state.withLock { $0.lastSend = .now }
        }
    }
}
