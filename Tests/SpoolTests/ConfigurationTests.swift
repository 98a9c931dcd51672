import Foundation
import Hiredis
import Spool
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theShippedFileStatesTheBuiltInDefaults() throws {
        let config = try SpoolConfiguration.load(path: Self.repo.appendingPathComponent("config/spool.yaml").path, environment: [:])
        let builtIn = SpoolConfiguration()
        #expect(config.defaults == builtIn.defaults)
        #expect(config.redisURL == builtIn.redisURL && config.prefix == builtIn.prefix && config.payloadLimit == builtIn.payloadLimit)
        #expect(config.timeouts == builtIn.timeouts && config.blockSeconds == builtIn.blockSeconds)
        #expect(config.reapInterval == builtIn.reapInterval && config.promoteInterval == builtIn.promoteInterval)
        #expect(config.callbackTimeout == builtIn.callbackTimeout && config.callbackSecret == nil)
        #expect(config.queues.isEmpty && config.exec.isEmpty)
    }

    @Test func queuesLayerOverDefaultsAndTheEnvironmentOverTheFile() throws {
        var config = SpoolConfiguration()
        try config.apply(
            yaml: """
                redis:
                  url: redis://app:pw@127.0.0.1:7000/2
                defaults:
                  max_attempts: 7
                queues:
                  mail:
                    rate_limit: 50
                exec:
                  resize: /usr/bin/convert -resize 50%
                """)
        #expect(config.policy(for: "mail").maxAttempts == 7 && config.policy(for: "mail").rateLimit == 50)
        #expect(config.policy(for: "other").rateLimit == 0)
        #expect(config.exec["resize"] == ["/usr/bin/convert", "-resize", "50%"])
        try config.apply(environment: ["SPOOL_REDIS_URL": "redis://127.0.0.1:7001", "SPOOL_PREFIX": "acme", "SPOOL_CALLBACK_SECRET": "x"])
        #expect(config.redisURL.address == .tcp(host: "127.0.0.1", port: 7001) && config.prefix == "acme" && config.callbackSecret == "x")
    }

    @Test(arguments: [
        ("defaults:\n  max_attempts: 0", "max_attempts must be between 1 and 1000"),
        ("defaults:\n  rate_interval: 0", "rate_interval positive"),
        ("redis:\n  url: http://x", "scheme must be redis or unix"),
        ("queues:\n  \"bad name\":\n    max_attempts: 2", "bad queue name"),
        ("defaults: [1, 2]", "defaults"),
        ("log_levle: debug", "log_levle: unknown setting"),
        ("redis:\n  command_timout: 5", "redis.command_timout: unknown setting"),
        ("defaults:\n  max_attemps: 3", "defaults.max_attemps: unknown setting"),
        ("queues:\n  mail:\n    rate_limt: 5", "queues.mail.rate_limt: unknown setting"),
    ])
    func badValuesAreNamed(_ yaml: String, _ fragment: String) {
        var config = SpoolConfiguration()
        do {
            try config.apply(yaml: yaml, source: "test.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.description.contains(fragment), "\(error)")
        }
    }
}
