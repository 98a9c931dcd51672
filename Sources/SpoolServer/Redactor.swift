import Foundation

/// Removes secrets (the Redis password and user name, the bearer token) from
/// text before it reaches a response or a log line.
struct Redactor: Sendable {
    private let secrets: [String]

    init(secrets: [String?]) {
        // Longest first, so a secret that contains another is removed whole.
        self.secrets = secrets.compactMap { $0 }.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
    }

    func redact(_ text: String) -> String {
        var text = text
        for secret in secrets where text.contains(secret) {
            text = text.replacingOccurrences(of: secret, with: "***")
        }
        return text
    }
}
