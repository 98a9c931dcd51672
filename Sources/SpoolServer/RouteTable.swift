import Hummingbird

/// The API's paths and methods, to tell "no such path" (404) from "no such
/// method here" (405 with `Allow`), which the router does not distinguish.
struct RouteTable: Sendable {
    private var routes: [(method: HTTPRequest.Method, segments: [Substring])] = []

    mutating func add(_ method: HTTPRequest.Method, _ path: String) {
        routes.append((method, Self.segments(path)))
    }

    /// The methods a path accepts; empty when no route matches it.
    func methods(for path: String) -> [HTTPRequest.Method] {
        let segments = Self.segments(path)
        return routes.filter { route in
            route.segments.count == segments.count
                && zip(route.segments, segments).allSatisfy { pattern, segment in pattern.hasPrefix(":") || pattern == segment }
        }.map(\.method)
    }

    private static func segments(_ path: String) -> [Substring] {
        let path = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return path.split(separator: "/", omittingEmptySubsequences: true)
    }
}
