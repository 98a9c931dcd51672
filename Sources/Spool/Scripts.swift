import Hiredis

/// The Lua scripts of lua/, embedded at build time (see Generated/LuaSources.swift).
public enum Scripts {
    public static let enqueue = load("enqueue")
    public static let claim = load("claim")
    public static let complete = load("complete")
    public static let fail = load("fail")
    public static let extend = load("extend")
    public static let reap = load("reap")
    public static let promote = load("promote")
    public static let trim = load("trim")
    public static let retry = load("retry")
    public static let purge = load("purge")
    public static let progress = load("progress")
    public static let cancel = load("cancel")
    public static let release = load("release")
    public static let pause = load("pause")
    public static let annotate = load("annotate")
    public static let watch = load("watch")

    /// Every script (the drift test checks it against lua/). Each is loaded on
    /// first use: EVALSHA, then SCRIPT LOAD on NOSCRIPT.
    public static let all: [RedisScript] = [
        enqueue, claim, complete, fail, extend, reap, promote, trim, retry, purge, progress, cancel, release, pause, annotate, watch,
    ]

    /// The embedded text of `lua/<name>.lua`.
    public static func source(named name: String) -> String? { LuaSources.all[name] }

    private static func load(_ name: String) -> RedisScript {
        guard let source = LuaSources.all[name] else { fatalError("lua/\(name).lua is not embedded; run make lua") }
        return RedisScript(name: name, source: source)
    }
}
