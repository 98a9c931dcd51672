/// Says whether a text is one RFC 8259 JSON text, without building anything.
///
/// Every enqueue (and every handler result) checks its JSON, tens of thousands
/// of times a second. `JSONSerialization.jsonObject` answers the same yes/no
/// question but builds a whole tree of Foundation objects to do it; this walks
/// the UTF-8 bytes once, allocates nothing, and stops at the first bad byte.
///
/// Accepts any value at top level (`1`, `"x"`, `null` too) with optional
/// surrounding whitespace (space, tab, LF, CR). Nesting deeper than
/// ``maxDepth`` arrays and objects is invalid; containers are tracked on an
/// explicit stack, so no input can overflow the call stack. A Swift `String` is
/// always valid UTF-8, so only the JSON grammar is checked. `\uXXXX` escapes are
/// checked for shape only: a lone surrogate such as `"\ud800"` matches the RFC's
/// grammar and is accepted.
public enum JSONValidator {
    /// The deepest nesting of arrays and objects accepted (the same as Foundation's).
    public static let maxDepth = 512

    /// Whether `text` is one JSON text nesting at most `maxDepth` arrays and objects.
    public static func isValid(_ text: String, maxDepth: Int = maxDepth) -> Bool {
        if let valid = text.utf8.withContiguousStorageIfAvailable({ isValid(bytes: $0, maxDepth: maxDepth) }) { return valid }
        var copy = text
        return copy.withUTF8 { isValid(bytes: $0, maxDepth: maxDepth) }
    }

    public static func isValid(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = maxDepth) -> Bool {
        withUnsafeTemporaryAllocation(of: Bool.self, capacity: max(1, maxDepth)) { stack in
            var scanner = Scanner(bytes: bytes)
            return scanner.scanText(stack: stack)
        }
    }
}

private enum Byte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let openArray = UInt8(ascii: "[")
    static let closeArray = UInt8(ascii: "]")
    static let openObject = UInt8(ascii: "{")
    static let closeObject = UInt8(ascii: "}")

    static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

    static func isHex(_ b: UInt8) -> Bool { isDigit(b) || (b | 0x20) &- 0x61 < 6 }

    static func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    /// The byte after a backslash, other than `u`: `" \ / b f n r t`.
    static func isSimpleEscape(_ b: UInt8) -> Bool {
        switch b {
        case quote, backslash, UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
            UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            true
        default: false
        }
    }
}

/// A cursor over the bytes. Every `scan…` method consumes what it accepts and
/// returns false at the first byte that breaks the grammar.
private struct Scanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var atEnd: Bool { index == bytes.count }

    /// The current byte, or nil at the end.
    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// Consumes `byte` if it is next.
    mutating func take(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    mutating func skipWhitespace() {
        while index < bytes.count, Byte.isWhitespace(bytes[index]) { index += 1 }
    }

    /// The whole text: one value between optional whitespace. `stack[d]` is
    /// true when the container at depth `d` is an object.
    mutating func scanText(stack: UnsafeMutableBufferPointer<Bool>) -> Bool {
        var depth = 0
        while true {
            // A value is expected here.
            skipWhitespace()
            guard let byte = peek else { return false }
            if byte == Byte.openArray || byte == Byte.openObject {
                guard depth < stack.count else { return false }
                let isObject = byte == Byte.openObject
                index += 1
                skipWhitespace()
                if !take(isObject ? Byte.closeObject : Byte.closeArray) {
                    stack[depth] = isObject
                    depth += 1
                    if isObject, !scanKey() { return false }
                    continue
                }
            } else if !scanScalar(byte) {
                return false
            }
            // A value has ended: close containers until a comma or the end.
            guard scanAfterValue(stack: stack, depth: &depth) else { return false }
            if depth == 0 { return true }
        }
    }

    /// After a value: closes finished containers and consumes the comma (and,
    /// in an object, the next key) before the next value. Leaves `depth` at 0
    /// only when the text ended cleanly.
    mutating func scanAfterValue(stack: UnsafeMutableBufferPointer<Bool>, depth: inout Int) -> Bool {
        while true {
            skipWhitespace()
            guard depth > 0 else { return atEnd }
            guard let byte = peek else { return false }
            index += 1
            let inObject = stack[depth - 1]
            if byte == Byte.comma { return !inObject || scanKey() }
            guard byte == (inObject ? Byte.closeObject : Byte.closeArray) else { return false }
            depth -= 1
        }
    }

    /// An object member's `"name" :`, with the whitespace around it.
    mutating func scanKey() -> Bool {
        skipWhitespace()
        guard take(Byte.quote), scanStringBody() else { return false }
        skipWhitespace()
        return take(Byte.colon)
    }

    /// A string, number or literal starting with `byte`.
    mutating func scanScalar(_ byte: UInt8) -> Bool {
        switch byte {
        case Byte.quote:
            index += 1
            return scanStringBody()
        case Byte.minus, Byte.zero...UInt8(ascii: "9"):
            return scanNumber()
        case UInt8(ascii: "t"): return scanLiteral("true")
        case UInt8(ascii: "f"): return scanLiteral("false")
        case UInt8(ascii: "n"): return scanLiteral("null")
        default: return false
        }
    }

    /// The rest of a string after its opening quote, through the closing one.
    mutating func scanStringBody() -> Bool {
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == Byte.quote { return true }
            if byte < 0x20 { return false }
            if byte == Byte.backslash, !scanEscape() { return false }
        }
        return false
    }

    /// The rest of an escape after its backslash.
    mutating func scanEscape() -> Bool {
        guard let byte = peek else { return false }
        index += 1
        if Byte.isSimpleEscape(byte) { return true }
        guard byte == UInt8(ascii: "u"), bytes.count - index >= 4 else { return false }
        for _ in 0..<4 {
            guard Byte.isHex(bytes[index]) else { return false }
            index += 1
        }
        return true
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    mutating func scanNumber() -> Bool {
        _ = take(Byte.minus)
        if !take(Byte.zero) {
            guard scanDigits() else { return false }
        }
        if take(Byte.dot), !scanDigits() { return false }
        if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            if !take(Byte.plus) { _ = take(Byte.minus) }
            return scanDigits()
        }
        return true
    }

    /// One or more digits.
    mutating func scanDigits() -> Bool {
        let start = index
        while index < bytes.count, Byte.isDigit(bytes[index]) { index += 1 }
        return index > start
    }

    mutating func scanLiteral(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        let word = word.utf8Start
        for offset in 0..<count where bytes[index + offset] != word[offset] { return false }
        index += count
        return true
    }
}
