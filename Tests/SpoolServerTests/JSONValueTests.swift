import Foundation
import Testing

@testable import SpoolServer

/// The API's own JSON: values that keep their text, and the encoder that
/// writes every response.
@Suite("JSON values and the response encoder")
struct JSONValueTests {
    @Test func aValueIsWrittenAsItWasReadButForWhitespaceAndEscapes() throws {
        let text = #" { "b" : [ 1.50 , -0 , 2E-3 , 123456789012345678901234567890 ] , "a" : "\u00e9\ud83d\ude00\/\t" , "b" : null , "c" : { } } "#
        let value = try #require(JSONValue(text: text))
        #expect(value.text == #"{"b":[1.50,-0,2E-3,123456789012345678901234567890],"a":"é😀/\t","b":null,"c":{}}"#)
        #expect(JSONValue(text: value.text) == value, "its own output reads back the same")
        // Control characters are escaped; quotes and backslashes too.
        #expect(JSONValue.string("q\"b\\n\n\u{01}\u{1F}").text == #""q\"b\\n\n\u0001\u001f""#)
    }

    @Test(arguments: [
        "", "{", "[1,]", "01", "1.", "+1", "NaN", #""\ud800""#, #""\udc00\ud800""#, #""\ud800\u0041""#, "[1] [2]", "'a'",
    ])
    func notJSON(text: String) {
        #expect(JSONValue(text: text) == nil, "\(text)")
    }

    @Test func bytesThatAreNotUTF8AreNotJSON() {
        let bytes: [UInt8] = Array(#"{"a":"caf"#.utf8) + [0xE9, 0x22, 0x7D]
        #expect(bytes.withUnsafeBufferPointer { JSONValue(bytes: $0) } == nil)
    }

    @Test func nestingIsBounded() {
        let ok = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        let deep = "[" + ok + "]"
        #expect(JSONValue(text: ok) != nil)
        #expect(JSONValue(text: deep) == nil)
        #expect(JSONValue(storedText: deep) == .string(deep), "a stored text too deep to read is shown as a string")
    }

    @Test func numbersAsSettings() {
        #expect(JSONValue.number("3").integer == 3)
        #expect(JSONValue.number("3.0").integer == 3 && JSONValue.number("-2e1").integer == -20)
        #expect(JSONValue.number("2.5").integer == nil && JSONValue.number("1e19").integer == nil)
        #expect(JSONValue.number("9223372036854775807").integer == Int64.max)
        #expect(JSONValue.number("1e400").double == nil && JSONValue.number("0.25").double == 0.25)
        #expect(JSONValue.string("3").integer == nil)
    }

    @Test func aFieldGivenTwiceIsAnError() throws {
        let twice = try #require(JSONValue(text: #"{"a":1,"a":2}"#))
        #expect(throws: APIError.self) { try twice.fields() }
        #expect(try JSONValue(text: #"{"a":1,"b":2}"#)?.fields()?["b"] == .number("2"))
        #expect(try JSONValue.array([]).fields() == nil)
    }

    struct Everything: Encodable {
        let int8: Int8 = -8
        let int16: Int16 = 16
        let int32: Int32 = 32
        let int64: Int64 = Int64.min
        let uint8: UInt8 = 255
        let uint16: UInt16 = 16
        let uint32: UInt32 = 32
        let uint64: UInt64 = UInt64.max
        let whole: Double = 1.0
        let half: Float = 0.5
        let small: Double = 1e-7
        let missing: String? = nil
        let present: Bool? = true
        let bytes: [UInt8] = [1, 2]
        let nested: [String: [Int]] = ["z": [1], "a": []]
        let raw = JSONValue.object([.init(name: "y", value: .number("1.0")), .init(name: "x", value: .null)])
    }

    @Test func theEncoderWritesWhatJSONEncoderWouldButLeavesValuesAlone() throws {
        let text = WireJSON.encode(Everything())
        #expect(
            String(decoding: text, as: UTF8.self)
                == #"{"bytes":[1,2],"half":0.5,"int16":16,"int32":32,"int64":-9223372036854775808,"int8":-8,"nested":{"a":[],"z":[1]},"#
                + #""present":true,"raw":{"y":1.0,"x":null},"small":1e-07,"uint16":16,"uint32":32,"uint64":18446744073709551615,"#
                + #""uint8":255,"whole":1}"#)
        // Foundation agrees on everything but the JSONValue, whose number it re-reads.
        let foundation = JSONEncoder()
        foundation.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let theirs = String(decoding: try foundation.encode(Everything()), as: UTF8.self)
        #expect(theirs.replacingOccurrences(of: #""raw":{"x":null,"y":1}"#, with: #""raw":{"y":1.0,"x":null}"#) == String(decoding: text, as: UTF8.self))
    }

    @Test func aNumberThatIsNotFiniteIsAnError() {
        #expect(throws: EncodingError.self) { try JSONTreeEncoder.encode(["x": Double.infinity]) }
    }
}
