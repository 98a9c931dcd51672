import Hiredis

/// An error from a Spool operation, saying which operation failed and on which
/// queue and job.
public struct SpoolError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// A caller's argument is wrong (bad name, bad option).
        case invalidInput
        /// The payload is not JSON or is over the size limit.
        case invalidPayload
        /// No job with that id.
        case jobNotFound
        /// The job is not in a state the operation applies to.
        case wrongState
        /// The caller's lease on the job is gone: token mismatch or expired.
        case leaseLost
        /// A job with this id exists already.
        case duplicate
        /// Redis cannot be reached or dropped the connection.
        case unavailable
        /// Redis answered with an error or an unexpected reply.
        case redis
        /// A configuration file or value is wrong.
        case configuration
    }

    public let code: Code
    public let operation: String
    public var queue: String?
    public var job: String?
    public let message: String

    public init(_ code: Code, _ operation: String, queue: String? = nil, job: String? = nil, _ message: String) {
        self.code = code
        self.operation = operation
        self.queue = queue
        self.job = job
        self.message = message
    }

    /// The same error told as part of `operation`: a check shared by two
    /// commands names the one that ran.
    func during(_ operation: String) -> SpoolError {
        SpoolError(code, operation, queue: queue, job: job, message)
    }

    public var description: String {
        var context = operation
        if let job { context += " job \(job)" } else if let queue { context += " on queue \(queue)" }
        return "\(context): \(message)"
    }

    /// Wraps a Redis error with the operation's context.
    static func from(_ error: any Error, _ operation: String, queue: String? = nil, job: String? = nil) -> SpoolError {
        if let spool = error as? SpoolError { return spool }
        if let redis = error as? RedisError {
            return SpoolError(redis.isConnectionLost ? .unavailable : .redis, operation, queue: queue, job: job, redis.description)
        }
        return SpoolError(.redis, operation, queue: queue, job: job, "\(error)")
    }

    /// Turns a script's negative return code into an error.
    static func script(code: Int, _ operation: String, queue: String?, job: String?) -> SpoolError {
        switch code {
        case -1: SpoolError(.jobNotFound, operation, queue: queue, job: job, "no such job")
        case -2: SpoolError(.wrongState, operation, queue: queue, job: job, "the job is not active")
        case -3: SpoolError(.leaseLost, operation, queue: queue, job: job, "the lease belongs to another claim")
        case -4: SpoolError(.leaseLost, operation, queue: queue, job: job, "the lease expired")
        case -5: SpoolError(.duplicate, operation, queue: queue, job: job, "a job with this id exists")
        case -6: SpoolError(.wrongState, operation, queue: queue, job: job, "the job is not dead")
        case -8: SpoolError(.invalidInput, operation, queue: queue, job: job, "the script rejected its arguments")
        default: SpoolError(.redis, operation, queue: queue, job: job, "unexpected script code \(code)")
        }
    }
}
