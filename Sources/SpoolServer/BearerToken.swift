import Hummingbird

/// The token that guards mutating requests.
struct BearerToken: Sendable {
    private let expected: [UInt8]

    init(_ token: String) { expected = Array(token.utf8) }

    /// Throws 401 unless `Authorization: Bearer <token>` carries the token.
    func check(_ request: Request) throws(APIError) {
        let challenge: HTTPFields = [.wwwAuthenticate: #"Bearer realm="spool""#]
        guard let header = request.headers[.authorization] else {
            throw APIError(.unauthorized, "this request needs Authorization: Bearer <token>", headers: challenge)
        }
        // RFC 9110: the scheme is case-insensitive, and one or more spaces follow it.
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer", Self.equal(Array(parts[1].drop { $0 == " " }.utf8), expected) else {
            throw APIError(.unauthorized, "wrong bearer token", headers: challenge)
        }
    }

    /// Compares in time that depends only on the lengths, never on where the
    /// first difference is.
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference: UInt8 = a.count == b.count ? 0 : 1
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}
