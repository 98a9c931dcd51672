import Synchronization

/// Where a worker's idle slots wait for work, so that an idle process costs
/// Redis one blocked connection whatever its concurrency.
///
/// One idle slot at a time is the *waiter*: it blocks on the wake lists. The
/// other idle slots park here, in memory. When the waiter takes a job (or its
/// connection fails) it leaves, and one parked slot wakes to claim and, if it
/// finds nothing, become the next waiter. Each slot that leaves the idle path
/// with a job wakes one more parked slot while nobody waits, so a burst of
/// jobs spreads over the slots one claim at a time.
final class WaitRoom: Sendable {
    private struct State {
        var waiter: Int?
        var parked: [CheckedContinuation<Bool, Never>] = []
        var closed = false
    }
    private let state = Mutex(State())

    /// Returns true when `slot` is the waiter (it was, or the role was free);
    /// otherwise parks it until the role frees up, and returns false: the slot
    /// should try to claim before waiting again. After ``close()``, returns
    /// false at once.
    func enter(_ slot: Int) async -> Bool {
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool? in
                if s.closed { return false }
                if s.waiter == nil || s.waiter == slot {
                    s.waiter = slot
                    return true
                }
                s.parked.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    /// `slot` has left the idle path: it took a job, or a call failed. If it
    /// was the waiter, the role is free; while it is free, one parked slot
    /// wakes.
    func leave(_ slot: Int) {
        let wake = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if s.waiter == slot { s.waiter = nil }
            guard s.waiter == nil, !s.parked.isEmpty else { return nil }
            return s.parked.removeFirst()
        }
        wake?.resume(returning: false)
    }

    /// Wakes every parked slot, for good (the worker is stopping).
    func close() {
        let all = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            defer { s.parked.removeAll() }
            return s.parked
        }
        for continuation in all { continuation.resume(returning: false) }
    }
}
