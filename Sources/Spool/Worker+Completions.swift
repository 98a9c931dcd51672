import Hiredis
import Synchronization

/// Completions from every slot, and the claims that follow them, gathered into
/// batches: per write, one complete.lua call per queue for all the jobs that
/// finished while the previous batch was in flight, and one claim.lua call per
/// queue for as many jobs as those slots want next.
///
/// A batch of n costs Redis much less than n pairs of calls: each script call
/// has a fixed cost, and the writes to the leases set, the completed set and
/// the counter are made once per batch. An idle worker's single completion
/// goes out at once, as one batch of one.
extension Worker {

    /// What became of a completion sent in a batch.
    struct CompletionAnswer: Sendable {
        /// complete.lua's code for this job; nil when the call failed (Redis
        /// unreachable, an error reply), so the outcome is not known to be stored.
        var code: Int?
        /// The job claimed for this slot, if it asked for one and one was waiting.
        var next: Claimed?
        /// The queue whose claim found nothing waiting (not asked again right away).
        var empty: String?
    }

    struct PendingCompletion: Sendable {
        let job: Claimed
        let result: String
        /// The queue to claim the next job from; nil: claim nothing.
        let claimFrom: String?
        /// Resumed with the answer; nil for the batch's leader, which flushes itself.
        let continuation: CheckedContinuation<CompletionAnswer, Never>?
    }

    struct CompletionQueue: Sendable {
        var pending: [PendingCompletion] = []
        /// A batch is in flight; later completions wait for it and go in the next.
        var flushing = false
    }

    /// Stores `job`'s completion with the others of its batch and, with
    /// `claimAfter`, claims the next job for this slot in the same write.
    func completeInBatch(_ job: Claimed, result: String, claimAfter: Bool) async -> CompletionAnswer {
        let claimFrom = claimAfter && !isStopping ? options.claimOrder().first : nil
        let lead = completions.withLock { queue -> Bool in
            if queue.flushing { return false }
            queue.flushing = true
            return true
        }
        if lead {
            // No batch in flight: send now, after one yield that lets slots
            // whose jobs finished in the same instant join (batches of about
            // 7 rather than 5.5 in a drain at concurrency 10).
            await Task.yield()
            let own = PendingCompletion(job: job, result: result, claimFrom: claimFrom, continuation: nil)
            let others = completions.withLock { queue -> [PendingCompletion] in
                defer { queue.pending = [] }
                return queue.pending
            }
            let answer = await flushCompletions([own] + others)[0]
            let more = completions.withLock { queue -> Bool in
                if queue.pending.isEmpty { queue.flushing = false }
                return queue.flushing
            }
            if more { Task { await self.drainCompletions() } }
            return answer
        }
        return await withCheckedContinuation { continuation in
            let start = completions.withLock { queue -> Bool in
                queue.pending.append(PendingCompletion(job: job, result: result, claimFrom: claimFrom, continuation: continuation))
                if queue.flushing { return false }
                queue.flushing = true
                return true
            }
            if start { Task { await self.drainCompletions() } }
        }
    }

    /// Sends batch after batch until no completion is pending.
    private func drainCompletions() async {
        while true {
            let taken = completions.withLock { queue -> [PendingCompletion] in
                if queue.pending.isEmpty { queue.flushing = false }
                defer { queue.pending = [] }
                return queue.pending
            }
            if taken.isEmpty { return }
            _ = await flushCompletions(taken)
        }
    }

    /// Sends one batch, resumes its waiting slots and returns every answer in order.
    private func flushCompletions(_ batch: [PendingCompletion]) async -> [CompletionAnswer] {
        var answers = Array(repeating: CompletionAnswer(), count: batch.count)
        // Per queue, in order of first appearance: the jobs to complete and the slots wanting a claim.
        var completing: [(queue: String, members: [Int])] = []
        var claiming: [(queue: String, members: [Int])] = []
        for (index, item) in batch.enumerated() {
            if let at = completing.firstIndex(where: { $0.queue == item.job.queue }) {
                completing[at].members.append(index)
            } else {
                completing.append((item.job.queue, [index]))
            }
            guard let from = item.claimFrom else { continue }
            if let at = claiming.firstIndex(where: { $0.queue == from }) {
                claiming[at].members.append(index)
            } else {
                claiming.append((from, [index]))
            }
        }
        let now = String(clock.nowMillis())
        var calls: [RedisCall] = completing.map { group in
            var args = [now, String(configuration.policy(for: group.queue).keepCompleted)]
            args.reserveCapacity(2 + 3 * group.members.count)
            for index in group.members {
                let item = batch[index]
                args += [item.job.id, item.job.token, item.result]
            }
            return .script(Scripts.complete, keys: [queuePrefix(group.queue)], args: args)
        }
        let claims = claiming.map { claimCall($0.queue, rearm: false, count: $0.members.count) }
        calls += claims.map(\.redisCall)

        if let replies = try? await commands.send(calls) {
            for (group, reply) in zip(completing, replies) {
                // An error reply (LOADING after a restart, a failover's
                // READONLY) is not the script's answer: the codes stay nil.
                guard let codes = reply.array, codes.count == group.members.count else { continue }
                for (index, code) in zip(group.members, codes) {
                    answers[index].code = code.int
                    reportCompletion(code.int, batch[index].job)
                }
            }
            for (group, (claim, reply)) in zip(claiming, zip(claims, replies.dropFirst(completing.count))) {
                let jobs = parseClaim(reply, claim)
                // Fewer jobs than asked for: the rest of the queue is empty
                // (nothing for 0, or a list cut short), unless paused or rate-limited.
                let drained = reply.int == 0 || reply.array?.first?.array != nil
                for (position, index) in group.members.enumerated() {
                    if position < jobs.count {
                        answers[index].next = jobs[position]
                    } else if drained {
                        answers[index].empty = group.queue
                    }
                }
            }
        }
        for (item, answer) in zip(batch, answers) { item.continuation?.resume(returning: answer) }
        return answers
    }
}
