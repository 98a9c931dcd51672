import Foundation
import Spool

/// Helpers shared by the commands that print jobs and queues.
enum Output {
    /// Prints `value` as pretty JSON with sorted snake_case keys.
    static func printJSON<T: Encodable>(_ value: T) throws {
        print(try jsonText(value))
    }

    /// `value` as pretty JSON with sorted snake_case keys.
    static func jsonText<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        // Foundation on Linux pretty-prints an empty array as "[\n\n]". Strings
        // cannot hold a raw newline, so this only touches layout.
        return text.replacing(#/\[\n\n *\]/#, with: "[]").replacing(#/\{\n\n *\}/#, with: "{}")
    }

    /// Unix milliseconds as ISO 8601 UTC with milliseconds.
    static func time(_ millis: Int) -> String {
        let date = Date(timeIntervalSince1970: Double(millis) / 1000)
        return date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// A short age such as `42s`, `5m`, `3h`, `2d`.
    static func age(since millis: Int, now: Int) -> String {
        let s = max(0, (now - millis) / 1000)
        switch s {
        case ..<60: return "\(s)s"
        case ..<3600: return "\(s / 60)m"
        case ..<86400: return "\(s / 3600)h"
        default: return "\(s / 86400)d"
        }
    }

    /// `text` on one line, cut to `limit` characters.
    static func oneLine(_ text: String, limit: Int) -> String {
        let flat = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return terminalSafe(flat.count <= limit ? flat : String(flat.prefix(limit - 1)) + "…")
    }

    /// `text` with every control character (ESC and the rest of C0 and C1,
    /// DEL) shown as U+FFFD: a handler's message must not move the cursor,
    /// clear the screen or retitle the terminal of whoever watches it.
    static func terminalSafe(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
        var safe = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            safe.append(scalar == "\t" ? " " : scalar.properties.generalCategory == .control ? "\u{FFFD}" : scalar)
        }
        return String(safe)
    }

    /// Prints rows under a header, columns padded; `numeric` columns align right.
    /// Columns padded to their widest cell, numeric ones aligned right; an empty
    /// line before each row whose index is in `gapsBefore`.
    static func printTable(_ header: [String], _ rows: [[String]], numeric: Set<Int> = [], gapsBefore: Set<Int> = []) {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for (r, row) in all.enumerated() {
            if gapsBefore.contains(r - 1) { print("") }
            let cells = row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                if i == row.count - 1 && !numeric.contains(i) { return cell }
                return numeric.contains(i) ? pad + cell : cell + pad
            }
            print(cells.joined(separator: "  "))
        }
    }
}
