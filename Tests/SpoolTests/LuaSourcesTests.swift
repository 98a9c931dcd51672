import Foundation
import Spool
import Testing

@Suite("Embedded Lua")
struct LuaSourcesTests {
    static let luaDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("lua")

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: luaDirectory.path)) ?? [])
            .filter { $0.hasSuffix(".lua") }.sorted()
    }

    @Test func generatedFileMatchesLuaDirectory() throws {
        #expect(!Self.files.isEmpty)
        for file in Self.files {
            let name = String(file.dropLast(4))
            let text = try String(contentsOf: Self.luaDirectory.appendingPathComponent(file), encoding: .utf8)
            let embedded = Scripts.source(named: name)
            // The generator drops only the file's final newline.
            #expect(embedded == String(text.dropLast(text.hasSuffix("\n") ? 1 : 0)), "lua/\(file) changed: run `make lua`")
        }
        #expect(Set(Scripts.all.map(\.name)) == Set(Self.files.map { String($0.dropLast(4)) }))
    }

    @Test func everyScriptDocumentsKeysArgvAndReturns() throws {
        for file in Self.files {
            let text = try String(contentsOf: Self.luaDirectory.appendingPathComponent(file), encoding: .utf8)
            let header = text.split(separator: "\n").prefix(while: { $0.hasPrefix("--") }).joined(separator: "\n")
            #expect(header.contains("KEYS[1]"), "\(file) header lacks KEYS")
            #expect(header.contains("ARGV[1]"), "\(file) header lacks ARGV")
            #expect(header.contains("Returns"), "\(file) header lacks Returns")
        }
    }
}
