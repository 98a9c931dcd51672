import Foundation
import Synchronization

/// What a handler sees of the job it runs.
public struct JobContext: Sendable {
    public let id: String
    public let queue: String
    public let type: String
    /// JSON text.
    public let payload: String
    /// 1 for the first attempt.
    public let attempt: Int
    public let maxAttempts: Int
    /// The worker process's id.
    public let workerID: String
    let lease: LeaseState
    let reporter: ProgressReporter?

    init(
        id: String, queue: String, type: String, payload: String, attempt: Int, maxAttempts: Int, workerID: String,
        lease: LeaseState, reporter: ProgressReporter? = nil
    ) {
        self.id = id
        self.queue = queue
        self.type = type
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.workerID = workerID
        self.lease = lease
        self.reporter = reporter
    }

    /// Reports how far the job is (0–100) with an optional message. Never
    /// blocks: values are stored on the job and published at most every 50 ms
    /// (the newest wins), and the last one is always sent before the outcome.
    public func progress(_ percent: Double, _ message: String? = nil) {
        reporter?.report(min(100, max(0, percent.isFinite ? percent : 0)), message ?? "")
    }

    /// True once the heartbeat found the lease gone (expired or taken by another
    /// claim): whatever this attempt does now will be rejected, so stop early.
    public var leaseLost: Bool { lease.lost }

    /// The payload decoded as `T`.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(payload.utf8))
        } catch {
            throw JobFailure.permanent("payload does not decode as \(T.self): \(error)")
        }
    }
}

/// Shared between a running job, the heartbeat, the cancel listener and the
/// timers that may stop it.
final class LeaseState: Sendable {
    private let flag = Atomic<Bool>(false)
    private let cancel = Atomic<Bool>(false)
    // Why the handler was stopped before it returned (the first reason wins),
    // and the handler's task, cancelled when a reason comes.
    private let stop = Mutex<(reason: Worker.Outcome?, task: Task<Worker.Outcome, Never>?)>((nil, nil))

    var lost: Bool { flag.load(ordering: .relaxed) }
    func markLost() { flag.store(true, ordering: .relaxed) }
    /// Someone asked for the job to be cancelled (cancel.lua).
    var cancelRequested: Bool { cancel.load(ordering: .relaxed) }
    func requestCancel() {
        cancel.store(true, ordering: .relaxed)
        interrupt(.cancelled)
    }

    /// Stops the handler with `reason` as the attempt's outcome, unless it has
    /// already been stopped.
    func interrupt(_ reason: Worker.Outcome) {
        let task = stop.withLock { s -> Task<Worker.Outcome, Never>? in
            guard s.reason == nil else { return nil }
            s.reason = reason
            return s.task
        }
        task?.cancel()
    }

    /// The handler's task; cancelled at once if a reason came first.
    func attach(_ task: Task<Worker.Outcome, Never>) {
        let early = stop.withLock { s in
            s.task = task
            return s.reason != nil
        }
        if early { task.cancel() }
    }

    /// The reason the handler was stopped, if it was.
    var interruption: Worker.Outcome? { stop.withLock { $0.reason } }
}

/// An error a handler throws to control what happens to the attempt.
public struct JobFailure: Error, Sendable, CustomStringConvertible {
    public let message: String
    /// False makes the job dead at once, whatever attempts remain.
    public let retryable: Bool

    public init(_ message: String, retryable: Bool = true) {
        self.message = message
        self.retryable = retryable
    }

    /// A failure that no retry can fix (bad payload, unknown type).
    public static func permanent(_ message: String) -> JobFailure { JobFailure(message, retryable: false) }

    public var description: String { message }
}

/// A handler: runs the job and returns its result as JSON text (nil stores `null`).
public typealias JobHandler = @Sendable (JobContext) async throws -> String?

/// The handlers a worker runs, by job type. Build it before starting the worker.
public struct JobHandlers: Sendable {
    var byType: [String: JobHandler] = [:]

    public init() {}

    /// Registers a handler that works on the raw context and returns JSON text.
    public mutating func register(_ type: String, _ handler: @escaping JobHandler) {
        precondition(Names.isValid(type), "job type \(type) \(Names.rule)")
        byType[type] = handler
    }

    /// Registers a typed handler: the payload is decoded as `P` (a payload that
    /// does not decode makes the job dead) and the result encoded as JSON.
    public mutating func register<P: Decodable & Sendable, R: Encodable & Sendable>(
        _ type: String, payload: P.Type, _ handler: @escaping @Sendable (P, JobContext) async throws -> R
    ) {
        register(type) { context in
            let payload = try context.decode(P.self)
            let result = try await handler(payload, context)
            let data = try JSONEncoder().encode(result)
            return String(decoding: data, as: UTF8.self)
        }
    }

    public var types: [String] { byType.keys.sorted() }

    public subscript(type: String) -> JobHandler? { byType[type] }
}
