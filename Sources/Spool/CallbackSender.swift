import CCurl
import Crypto
import Foundation

/// Why a callback delivery failed: a rejected URL, a transport error reported by libcurl, or a non-2xx answer.
///
/// The message never contains the signing secret.
public struct CallbackError: Error, Sendable, CustomStringConvertible {
    /// A human-readable explanation, e.g. `HTTP 500 from http://host/hook: boom`.
    public let message: String

    /// Creates an error carrying `message`.
    public init(_ message: String) { self.message = message }

    /// The message itself.
    public var description: String { message }
}

/// Delivers a job's final state to its callback URL: one HTTP POST of a JSON body, through libcurl.
///
/// Each ``post(url:body:)`` uses a fresh easy handle on a dedicated thread, so the blocking transfer never occupies
/// Swift's cooperative thread pool. Only `http://` and `https://` are spoken, redirects are never followed, and the
/// whole exchange (connect included) is bounded by `timeout`.
public struct CallbackSender: Sendable {
    /// The HMAC key; `nil` (or empty) means requests go unsigned.
    private let secret: String?
    /// Whole-request time limit, in milliseconds (at least 1).
    private let timeoutMilliseconds: Int
    /// The `User-Agent` header value, with control characters removed.
    private let userAgent: String

    /// The most bytes of a failing response's body quoted in a ``CallbackError``.
    static let bodyExcerptLimit = 200

    /// Creates a sender.
    /// - Parameters:
    ///   - secret: Key for the `X-Spool-Signature` HMAC-SHA256 header; `nil` or empty sends no signature.
    ///   - timeout: Seconds allowed for the whole request, connection included.
    ///   - userAgent: The `User-Agent` header value (CR, LF and other control characters are dropped).
    public init(secret: String? = nil, timeout: Double = 10, userAgent: String = "spool") {
        self.secret = (secret?.isEmpty ?? true) ? nil : secret
        let milliseconds = (timeout * 1000).rounded(.up)
        self.timeoutMilliseconds = milliseconds.isFinite ? Int(min(max(milliseconds, 1), Double(Int32.max))) : Int(Int32.max)
        self.userAgent = String(String.UnicodeScalarView(userAgent.unicodeScalars.filter { $0.properties.generalCategory != .control }))
    }

    /// The value of the `X-Spool-Signature` header for `body`.
    /// - Returns: `"sha256="` followed by the lowercase hex HMAC-SHA256 of `body`'s UTF-8 bytes keyed with the
    ///   secret, or `nil` when the sender has no secret.
    public func signature(for body: String) -> String? {
        guard let secret else { return nil }
        let code = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + code.map { JobID.hex(UInt64($0), digits: 2) }.joined()
    }

    /// POSTs `body` (sent as `application/json`) to `url`.
    ///
    /// Sends `Content-Type: application/json`, `User-Agent`, and `X-Spool-Signature` when a secret is set.
    /// The blocking `curl_easy_perform` runs on its own `Thread` (never on Swift's cooperative pool), which resumes
    /// the caller when the transfer ends.
    /// - Returns: The HTTP status code, always in `200..<300`.
    /// - Throws: ``CallbackError`` when `url` is not `http://` or `https://` (checked before any I/O; libcurl is also
    ///   restricted to those protocols and never follows redirects), when the connection fails or times out (with
    ///   curl's error text, e.g. "Couldn't connect to server"), and for a non-2xx status
    ///   ("HTTP 500 from http://…: <first 200 bytes of the response body>").
    public func post(url: String, body: String) async throws(CallbackError) -> Int {
        if let problem = Self.urlProblem(url) { throw CallbackError(problem) }
        let result: Result<Int, CallbackError> = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.perform(url: url, body: body)) }
        }
        return try result.get()
    }

    // MARK: - Internals

    /// libcurl's functions: resolved once and never changed after, so shared between threads.
    private final class Curl: @unchecked Sendable {
        let api: spool_curl
        init(_ api: spool_curl) { self.api = api }
    }

    /// libcurl, loaded and initialised (`curl_global_init`) once per process, at the first delivery: a worker that
    /// never sends a callback never maps it (Swift's lazy static initialisation is thread-safe).
    private static let curl: Result<Curl, CallbackError> = {
        let slot = UnsafeMutablePointer<spool_curl>.allocate(capacity: 1)
        defer { slot.deallocate() }
        if let problem = spool_curl_load(slot) {
            return .failure(CallbackError("cannot load libcurl (libcurl.so.4): \(String(cString: problem))"))
        }
        let api = slot.pointee
        let code = api.global_init(Int(CURL_GLOBAL_DEFAULT))
        guard code == CURLE_OK else {
            return .failure(CallbackError("cannot initialise libcurl: \(String(cString: api.easy_strerror(code)))"))
        }
        return .success(Curl(api))
    }()

    /// Why `url` may not be used, or `nil` when it is an acceptable http(s) URL.
    static func urlProblem(_ url: String) -> String? {
        if url.isEmpty { return "callback URL is empty" }
        let lowered = url.lowercased()
        guard let scheme = ["http://", "https://"].first(where: { lowered.hasPrefix($0) }) else {
            return "callback URL must start with http:// or https://: \(redacted(url))"
        }
        if url.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == " " }) {
            return "callback URL contains whitespace or control characters: \(redacted(url))"
        }
        if url.dropFirst(scheme.count).first.map({ "/?#".contains($0) }) ?? true {
            return "callback URL has no host: \(redacted(url))"
        }
        return nil
    }

    /// `url` with any `user:password@` part masked, for error messages.
    static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let authorityEnd = url[schemeEnd.upperBound...].firstIndex(where: { "/?#".contains($0) }) ?? url.endIndex
        guard let at = url[schemeEnd.upperBound..<authorityEnd].lastIndex(of: "@") else { return url }
        return url.replacingCharacters(in: schemeEnd.upperBound...at, with: "***@")
    }

    /// Collects the first bytes of the response body for error messages; the rest is counted and dropped.
    private final class ResponseSink {
        var bytes: [UInt8] = []
    }

    /// The blocking transfer. Every libcurl resource it creates is released before it returns.
    private func perform(url: String, body: String) -> Result<Int, CallbackError> {
        let shown = Self.redacted(url)
        var api: spool_curl
        switch Self.curl {
        case .success(let loaded): api = loaded.api
        case .failure(let error): return .failure(error)
        }
        // Declared first so it is freed last, after the handle that points at it.
        var headers: UnsafeMutablePointer<curl_slist>? = nil
        defer { api.slist_free_all(headers) }
        // "Expect:" stops curl from waiting for a "100 Continue" before sending a large body.
        var lines = ["Content-Type: application/json", "Expect:"]
        if let signature = signature(for: body) { lines.append("X-Spool-Signature: \(signature)") }
        for line in lines {
            guard let appended = api.slist_append(headers, line) else {
                return .failure(CallbackError("cannot build the request headers for \(shown)"))
            }
            headers = appended
        }

        guard let handle = api.easy_init() else { return .failure(CallbackError("cannot create a libcurl handle")) }
        defer { api.easy_cleanup(handle) }

        // A trailing NUL keeps the buffer non-empty (an empty body still has a valid pointer); it is not sent.
        var payload = Array(body.utf8)
        let payloadSize = payload.count
        payload.append(0)
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let sink = ResponseSink()
        let sinkBox = Unmanaged.passRetained(sink)
        defer { sinkBox.release() }

        let code: CURLcode = payload.withUnsafeMutableBytes { payloadBytes in
            errorBuffer.withUnsafeMutableBytes { errorBytes in
                var setup: [CURLcode] = [
                    spool_curl_setopt_string(&api, handle, CURLOPT_URL, url),
                    spool_curl_setopt_string(&api, handle, CURLOPT_PROTOCOLS_STR, "http,https"),
                    spool_curl_setopt_string(&api, handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"),
                    spool_curl_setopt_long(&api, handle, CURLOPT_FOLLOWLOCATION, 0),
                    spool_curl_setopt_long(&api, handle, CURLOPT_NOSIGNAL, 1),
                    spool_curl_setopt_long(&api, handle, CURLOPT_TIMEOUT_MS, timeoutMilliseconds),
                    spool_curl_setopt_long(&api, handle, CURLOPT_CONNECTTIMEOUT_MS, timeoutMilliseconds),
                    spool_curl_setopt_string(&api, handle, CURLOPT_USERAGENT, userAgent),
                    spool_curl_setopt_pointer(&api, handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headers)),
                    spool_curl_setopt_long(&api, handle, CURLOPT_POSTFIELDSIZE, payloadSize),
                    spool_curl_setopt_pointer(&api, handle, CURLOPT_POSTFIELDS, payloadBytes.baseAddress),
                    spool_curl_setopt_pointer(&api, handle, CURLOPT_ERRORBUFFER, errorBytes.baseAddress),
                    spool_curl_setopt_pointer(&api, handle, CURLOPT_WRITEDATA, sinkBox.toOpaque()),
                ]
                setup.append(
                    spool_curl_setopt_write(&api, handle) { data, size, count, context in
                        let n = size * count
                        guard let data, let context else { return n }
                        let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
                        let wanted = min(n, CallbackSender.bodyExcerptLimit - sink.bytes.count)
                        if wanted > 0 {
                            data.withMemoryRebound(to: UInt8.self, capacity: wanted) {
                                sink.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: wanted))
                            }
                        }
                        return n
                    })
                if let failed = setup.first(where: { $0 != CURLE_OK }) { return failed }
                return api.easy_perform(handle)
            }
        }

        guard code == CURLE_OK else {
            let summary = String(cString: api.easy_strerror(code))
            let detail = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let text = detail.isEmpty || detail == summary ? summary : "\(summary) (\(detail))"
            return .failure(CallbackError("POST \(shown) failed: \(text)"))
        }
        var status = 0
        _ = spool_curl_getinfo_long(&api, handle, CURLINFO_RESPONSE_CODE, &status)
        guard (200..<300).contains(status) else {
            let excerpt = String(decoding: sink.bytes, as: UTF8.self)
            return .failure(CallbackError("HTTP \(status) from \(shown)" + (excerpt.isEmpty ? "" : ": \(excerpt)")))
        }
        return .success(status)
    }
}
