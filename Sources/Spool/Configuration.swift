import Foundation
import Hiredis
import Yams

/// How a queue treats its jobs. Every field has a default; config/spool.yaml
/// sets them for all queues (`defaults:`) and per queue (`queues: NAME:`).
public struct QueuePolicy: Sendable, Equatable, Codable {
    /// Seconds a claim lasts without a heartbeat (the visibility timeout).
    /// Workers renew it every third of this while a job runs.
    public var visibilityTimeout: Double = 30
    /// Attempts a job gets before it is dead, when it was enqueued without its own.
    public var maxAttempts: Int = 5
    /// Seconds a handler may run before its attempt fails; 0 means no limit.
    public var jobTimeout: Double = 1800
    /// Retry delay before jitter: min(backoffCap, backoffBase · 2^(attempt-1)) seconds.
    public var backoffBase: Double = 1
    public var backoffCap: Double = 3600
    /// Completed jobs kept: at most this many (-1: no count limit) …
    public var keepCompleted: Int = 1000
    /// … and for at most this many seconds (-1: no age limit).
    public var keepCompletedSeconds: Double = 86400
    /// Dead jobs kept, by count and age, likewise.
    public var keepDead: Int = 10000
    public var keepDeadSeconds: Double = 7 * 86400
    /// At most `rateLimit` claims per `rateInterval` seconds across all workers; 0: no limit.
    public var rateLimit: Int = 0
    public var rateInterval: Double = 1
    /// Seconds an idempotency key keeps pointing at its job after the job finished.
    public var uniqueWindow: Double = 86400

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case visibilityTimeout = "visibility_timeout"
        case maxAttempts = "max_attempts"
        case jobTimeout = "job_timeout"
        case backoffBase = "backoff_base"
        case backoffCap = "backoff_cap"
        case keepCompleted = "keep_completed"
        case keepCompletedSeconds = "keep_completed_seconds"
        case keepDead = "keep_dead"
        case keepDeadSeconds = "keep_dead_seconds"
        case rateLimit = "rate_limit"
        case rateInterval = "rate_interval"
        case uniqueWindow = "unique_window"
    }

    public init(from decoder: any Decoder) throws {
        self = try PolicyOverrides(from: decoder).applied(to: QueuePolicy())
    }

    /// Throws a message naming the first value out of range.
    func validate(_ scope: String) throws(SpoolError) {
        func bad(_ m: String) -> SpoolError { SpoolError(.configuration, "configuration", "\(scope): \(m)") }
        guard visibilityTimeout >= 0.1 else { throw bad("visibility_timeout must be at least 0.1 seconds") }
        guard (1...1000).contains(maxAttempts) else { throw bad("max_attempts must be between 1 and 1000") }
        guard jobTimeout >= 0 else { throw bad("job_timeout must be 0 (none) or positive") }
        guard backoffBase >= 0, backoffCap >= backoffBase else { throw bad("backoff_base must be >= 0 and backoff_cap >= backoff_base") }
        guard keepCompleted >= -1, keepDead >= -1 else { throw bad("keep_completed and keep_dead must be -1 (unlimited) or more") }
        guard rateLimit >= 0, rateInterval > 0 else { throw bad("rate_limit must be 0 (none) or more and rate_interval positive") }
        guard uniqueWindow >= 0 else { throw bad("unique_window must not be negative") }
    }
}

/// Everything Spool reads from config/spool.yaml and the environment.
public struct SpoolConfiguration: Sendable {
    /// Where Redis is. Env: SPOOL_REDIS_URL.
    public var redisURL = RedisURL(address: .tcp(host: "127.0.0.1", port: 6379))
    /// First part of every key. Env: SPOOL_PREFIX.
    public var prefix = "spool"
    /// Largest payload accepted, in bytes. Env: SPOOL_PAYLOAD_LIMIT.
    public var payloadLimit = 512 * 1024
    /// Redis connect and command timeouts.
    public var timeouts = RedisTimeouts(connect: 2, command: 10)
    /// Seconds an idle worker blocks in one wait before it checks again; kept
    /// under the command timeout so a dead connection is noticed.
    public var blockSeconds: Double = 2
    /// Seconds between housekeeping sweeps (reaper, retention); delayed-job
    /// promotion runs every `promoteInterval`.
    public var reapInterval: Double = 1
    public var promoteInterval: Double = 0.1
    /// Policy for queues not named in `queues`.
    public var defaults = QueuePolicy()
    public var queues: [String: QueuePolicy] = [:]
    /// Job type -> argv of the command that runs it (see ExecHandler).
    public var exec: [String: [String]] = [:]
    /// swift-log level name. Env: SPOOL_LOG_LEVEL.
    public var logLevel = "info"
    /// Signs callback POSTs (X-Spool-Signature: sha256=HMAC). Env: SPOOL_CALLBACK_SECRET.
    public var callbackSecret: String?
    /// Seconds one callback POST may take.
    public var callbackTimeout: Double = 10

    public init() {}

    public func policy(for queue: String) -> QueuePolicy { queues[queue] ?? defaults }

    /// The file named by SPOOL_CONFIG, else ./config/spool.yaml when present,
    /// else built-in defaults; then the environment overrides.
    public static func load(path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws(SpoolError)
        -> SpoolConfiguration
    {
        var config = SpoolConfiguration()
        let explicit = path ?? environment["SPOOL_CONFIG"]
        let file = explicit ?? (FileManager.default.fileExists(atPath: "config/spool.yaml") ? "config/spool.yaml" : nil)
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw SpoolError(.configuration, "configuration", "cannot read \(file)")
            }
            try config.apply(yaml: text, source: file)
        }
        try config.apply(environment: environment)
        return config
    }

    /// Applies a YAML document over the current values.
    public mutating func apply(yaml text: String, source: String = "config") throws(SpoolError) {
        let file: ConfigFile
        do {
            file = try YAMLDecoder().decode(ConfigFile.self, from: text.isEmpty ? "{}" : text)
        } catch {
            throw SpoolError(.configuration, "configuration", "\(source): \(Self.describe(error))")
        }
        try ConfigFile.checkKeys(text, source: source)
        if let url = file.redis?.url { try setRedisURL(url, source: source) }
        if let v = file.redis?.connectTimeout { timeouts.connect = v }
        if let v = file.redis?.commandTimeout { timeouts.command = v }
        if let v = file.prefix { prefix = v }
        if let v = file.payloadLimit { payloadLimit = v }
        if let v = file.blockSeconds { blockSeconds = v }
        if let v = file.reapInterval { reapInterval = v }
        if let v = file.promoteInterval { promoteInterval = v }
        if let v = file.logLevel { logLevel = v }
        if let v = file.callbackSecret { callbackSecret = v }
        if let v = file.callbackTimeout { callbackTimeout = v }
        if let d = file.defaults { defaults = d.applied(to: defaults) }
        for (name, entry) in file.queues ?? [:] {
            guard Names.isValid(name) else { throw SpoolError(.configuration, "configuration", "\(source): bad queue name \(name)") }
            queues[name] = entry.applied(to: queues[name] ?? defaults)
        }
        for (type, command) in file.exec ?? [:] {
            guard Names.isValid(type) else { throw SpoolError(.configuration, "configuration", "\(source): bad job type \(type) under exec") }
            let argv = ExecHandler.split(command)
            guard !argv.isEmpty else { throw SpoolError(.configuration, "configuration", "\(source): empty command for exec type \(type)") }
            exec[type] = argv
        }
        try validate()
    }

    public mutating func apply(environment: [String: String]) throws(SpoolError) {
        if let url = environment["SPOOL_REDIS_URL"], !url.isEmpty { try setRedisURL(url, source: "SPOOL_REDIS_URL") }
        if let v = environment["SPOOL_PREFIX"], !v.isEmpty { prefix = v }
        if let v = environment["SPOOL_LOG_LEVEL"], !v.isEmpty { logLevel = v }
        if let v = environment["SPOOL_CALLBACK_SECRET"], !v.isEmpty { callbackSecret = v }
        if let v = environment["SPOOL_PAYLOAD_LIMIT"], !v.isEmpty {
            guard let n = Int(v), n > 0 else {
                throw SpoolError(.configuration, "configuration", "SPOOL_PAYLOAD_LIMIT must be a positive number of bytes")
            }
            payloadLimit = n
        }
        try validate()
    }

    public mutating func setRedisURL(_ text: String, source: String) throws(SpoolError) {
        do {
            redisURL = try RedisURL(parsing: text)
        } catch {
            throw SpoolError(.configuration, "configuration", "\(source): \(error.message)")
        }
    }

    func validate() throws(SpoolError) {
        guard !prefix.isEmpty, !prefix.contains("{"), !prefix.contains("}") else {
            throw SpoolError(.configuration, "configuration", "prefix must be non-empty and without braces")
        }
        guard payloadLimit > 0 else { throw SpoolError(.configuration, "configuration", "payload_limit must be positive") }
        guard blockSeconds > 0, blockSeconds < timeouts.command else {
            throw SpoolError(.configuration, "configuration", "block_seconds must be positive and below redis.command_timeout")
        }
        try defaults.validate("defaults")
        for (name, policy) in queues { try policy.validate("queues.\(name)") }
    }

    private static func describe(_ error: any Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
                let path = c.codingPath.map(\.stringValue).joined(separator: ".")
                return path.isEmpty ? c.debugDescription : "\(path): \(c.debugDescription)"
            case .keyNotFound(let k, _): return "missing \(k.stringValue)"
            @unknown default: return "\(e)"
            }
        }
        return "\(error)"
    }
}

/// The shape of config/spool.yaml.
private struct ConfigFile: Decodable {
    struct Redis: Decodable {
        var url: String?
        var connectTimeout: Double?
        var commandTimeout: Double?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case url
            case connectTimeout = "connect_timeout"
            case commandTimeout = "command_timeout"
        }
    }
    var redis: Redis?
    var prefix: String?
    var payloadLimit: Int?
    var blockSeconds: Double?
    var reapInterval: Double?
    var promoteInterval: Double?
    var logLevel: String?
    var callbackSecret: String?
    var callbackTimeout: Double?
    var defaults: PolicyOverrides?
    var queues: [String: PolicyOverrides]?
    var exec: [String: String]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case redis, prefix, defaults, queues, exec
        case payloadLimit = "payload_limit"
        case blockSeconds = "block_seconds"
        case reapInterval = "reap_interval"
        case promoteInterval = "promote_interval"
        case logLevel = "log_level"
        case callbackSecret = "callback_secret"
        case callbackTimeout = "callback_timeout"
    }
}

extension ConfigFile {
    /// Throws for the first key of the file that no setting of its place
    /// reads (the decoder would drop it): a misspelt setting must not leave
    /// its default in force unseen.
    static func checkKeys(_ text: String, source: String) throws(SpoolError) {
        // Text the decoder accepted is YAML; a document that is not a mapping has no keys.
        guard let root = try? Yams.compose(yaml: text) else { return }
        let policy = Set(QueuePolicy.CodingKeys.allCases.map(\.rawValue))
        func check(_ node: Node?, _ path: String, _ known: Set<String>) throws(SpoolError) {
            for (key, value) in node?.mapping ?? [:] {
                let name = key.string ?? "\(key)"
                let here = path.isEmpty ? name : "\(path).\(name)"
                guard known.contains(name) else {
                    throw SpoolError(.configuration, "configuration", "\(source): \(here): unknown setting (misspelt, or not in this version)")
                }
                switch here {
                case "redis": try check(value, here, Set(Redis.CodingKeys.allCases.map(\.rawValue)))
                case "defaults": try check(value, here, policy)
                case "queues":
                    for (queue, settings) in value.mapping ?? [:] { try check(settings, "queues.\(queue.string ?? "")", policy) }
                default: break
                }
            }
        }
        try check(root, "", Set(CodingKeys.allCases.map(\.rawValue)))
    }
}

/// The policy fields a config section sets; the rest come from the layer below.
private struct PolicyOverrides: Decodable {
    var visibilityTimeout: Double?
    var maxAttempts: Int?
    var jobTimeout: Double?
    var backoffBase: Double?
    var backoffCap: Double?
    var keepCompleted: Int?
    var keepCompletedSeconds: Double?
    var keepDead: Int?
    var keepDeadSeconds: Double?
    var rateLimit: Int?
    var rateInterval: Double?
    var uniqueWindow: Double?

    typealias CodingKeys = QueuePolicy.CodingKeys

    func applied(to base: QueuePolicy) -> QueuePolicy {
        var p = base
        if let v = visibilityTimeout { p.visibilityTimeout = v }
        if let v = maxAttempts { p.maxAttempts = v }
        if let v = jobTimeout { p.jobTimeout = v }
        if let v = backoffBase { p.backoffBase = v }
        if let v = backoffCap { p.backoffCap = v }
        if let v = keepCompleted { p.keepCompleted = v }
        if let v = keepCompletedSeconds { p.keepCompletedSeconds = v }
        if let v = keepDead { p.keepDead = v }
        if let v = keepDeadSeconds { p.keepDeadSeconds = v }
        if let v = rateLimit { p.rateLimit = v }
        if let v = rateInterval { p.rateInterval = v }
        if let v = uniqueWindow { p.uniqueWindow = v }
        return p
    }
}
