import Foundation
import Hummingbird
import Spool

/// A request body read as a JSON object, within the size limit, with typed
/// accessors whose errors name the field.
struct RequestJSON: Sendable {
    let fields: [String: JSONValue]

    /// Reads the body (413 past `limit` bytes) and parses it as a JSON object
    /// (400 `invalid_json` when it is not JSON, `bad_request` when it is not an
    /// object or has a field outside `allowed`). An empty body is `{}` when
    /// `optional`. The Content-Type is not checked: the body is JSON or nothing.
    static func read(_ request: Request, limit: Int, allowed: Set<String>, optional: Bool = false) async throws -> RequestJSON {
        let bytes = try await body(request, limit: limit)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            if optional { return RequestJSON(fields: [:]) }
            throw APIError(.badRequest, "the request needs a JSON object body")
        }
        // Strict RFC 8259 (no trailing commas), numbers kept as written.
        guard let value = bytes.withUnsafeBufferPointer({ JSONValue(bytes: $0) }) else {
            throw APIError(
                .invalidJSON,
                "the body is not valid JSON (RFC 8259, UTF-8, no lone surrogate escapes), or nests arrays and objects deeper than \(JSONValue.maxDepth)")
        }
        guard let fields = try value.fields() else { throw APIError(.badRequest, "the body must be a JSON object, not \(value.typeName)") }
        let json = RequestJSON(fields: fields)
        try json.only(allowed)
        return json
    }

    /// Throws 400 for any field outside `allowed`.
    func only(_ allowed: Set<String>) throws(APIError) {
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError(.badRequest, "unknown field \"\(unknown)\" (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// The body's bytes; 413 as soon as they pass `limit`.
    static func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError(.payloadTooLarge, "the request body is \(length) bytes, over the limit of \(limit)")
        }
        var bytes: [UInt8] = []
        for try await chunk in request.body {
            guard bytes.count + chunk.readableBytes <= limit else {
                throw APIError(.payloadTooLarge, "the request body is over the limit of \(limit) bytes")
            }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        return bytes
    }

    func value(_ name: String) -> JSONValue? {
        guard let v = fields[name] else { return nil }
        return v
    }

    func string(_ name: String, required: Bool = false) throws(APIError) -> String? {
        switch fields[name] {
        case nil:
            if required { throw APIError(.badRequest, "\"\(name)\" is required") }
            return nil
        case .string(let s)?: return s
        case let other?: throw APIError(.badRequest, "\"\(name)\" must be a string, not \(other.typeName)")
        }
    }

    func int(_ name: String, in range: ClosedRange<Int64>) throws(APIError) -> Int? {
        switch fields[name] {
        case nil: return nil
        case let number? where number.integer.map(range.contains) == true: return number.integer.map { Int($0) }
        case .number?: throw APIError(.badRequest, "\"\(name)\" must be an integer from \(range.lowerBound) to \(range.upperBound)")
        case let other?: throw APIError(.badRequest, "\"\(name)\" must be an integer, not \(other.typeName)")
        }
    }

    func number(_ name: String) throws(APIError) -> Double? {
        switch fields[name] {
        case nil: return nil
        case let number? where number.double != nil: return number.double
        case .number?: throw APIError(.badRequest, "\"\(name)\" must be a finite number")
        case let other?: throw APIError(.badRequest, "\"\(name)\" must be a number, not \(other.typeName)")
        }
    }

    func array(_ name: String) throws(APIError) -> [JSONValue]? {
        switch fields[name] {
        case nil: return nil
        case .array(let a)?: return a
        case let other?: throw APIError(.badRequest, "\"\(name)\" must be an array, not \(other.typeName)")
        }
    }
}
