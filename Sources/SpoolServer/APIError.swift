import Foundation
import Hummingbird
import Spool

/// An error as the API reports it: an HTTP status and
/// `{"error":{"code":"…","message":"…"}}` with a stable code.
struct APIError: Error, Sendable, CustomStringConvertible {
    /// The stable codes clients may switch on (docs/openapi.json lists them).
    enum Code: String, Sendable {
        case badRequest = "bad_request"
        case invalidJSON = "invalid_json"
        case invalidPayload = "invalid_payload"
        case payloadTooLarge = "payload_too_large"
        case unauthorized
        case notFound = "not_found"
        case methodNotAllowed = "method_not_allowed"
        case conflict
        case unavailable
        case `internal`

        var status: HTTPResponse.Status {
            switch self {
            case .badRequest, .invalidJSON: .badRequest
            case .invalidPayload: .unprocessableContent
            case .payloadTooLarge: .contentTooLarge
            case .unauthorized: .unauthorized
            case .notFound: .notFound
            case .methodNotAllowed: .methodNotAllowed
            case .conflict: .conflict
            case .unavailable: .serviceUnavailable
            case .internal: .internalServerError
            }
        }
    }

    let code: Code
    let message: String
    /// Extra response headers (WWW-Authenticate, Allow, Retry-After).
    var headers: HTTPFields = [:]

    init(_ code: Code, _ message: String, headers: HTTPFields = [:]) {
        self.code = code
        self.message = message
        self.headers = headers
    }

    var description: String { "\(code.rawValue): \(message)" }

    /// The one place a Spool error becomes an HTTP error.
    ///
    /// invalidInput 400, invalidPayload 422 (the request was well-formed JSON
    /// but the job's payload breaks Spool's rules), jobNotFound 404, wrongState
    /// and duplicate 409, unavailable 503; Redis saying it is loading,
    /// failing over, read-only or busy running a script is 503 too. Anything else is 500.
    init(_ error: SpoolError) {
        let message = error.description
        switch error.code {
        case .invalidInput: self.init(.badRequest, message)
        case .invalidPayload: self.init(.invalidPayload, message)
        case .jobNotFound: self.init(.notFound, message)
        case .wrongState, .duplicate, .leaseLost: self.init(.conflict, message)
        case .unavailable: self.init(.unavailable, message, headers: [.retryAfter: "1"])
        case .redis where Self.isTransient(error.message):
            self.init(.unavailable, message, headers: [.retryAfter: "1"])
        case .redis, .configuration: self.init(.internal, message)
        @unknown default: self.init(.internal, message)
        }
    }

    /// Error replies of a Redis that is up but cannot serve yet.
    private static let transientReplies: Set<Substring> = ["LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY", "BUSY"]

    /// Whether a Redis error's message carries one of those replies' codes,
    /// wherever the message puts it ("redis: LOADING …", "enqueue job …: READONLY …").
    static func isTransient(_ message: String) -> Bool {
        message.split(whereSeparator: { $0 == " " || $0 == ":" }).contains { transientReplies.contains($0) }
    }

    /// Any error a handler threw, as an API error.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let api as APIError: return api
        case let spool as SpoolError: return APIError(spool)
        case let http as HTTPError:
            switch http.status.code {
            case 404: return APIError(.notFound, "no such resource")
            case 413: return APIError(.payloadTooLarge, "request body too large")
            case 400..<500: return APIError(.badRequest, http.body ?? http.status.reasonPhrase)
            default: return APIError(.internal, http.body ?? http.status.reasonPhrase)
            }
        default: return APIError(.internal, "unexpected error: \(error)")
        }
    }

    /// The JSON response, with secrets scrubbed from the message.
    func response(redactor: Redactor) -> Response {
        let body = ErrorBody(error: .init(code: code.rawValue, message: redactor.redact(message)))
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: code.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: WireJSON.encode(body))))
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            let code: String
            let message: String
        }
        let error: Detail
    }
}
