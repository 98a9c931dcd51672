import Foundation

/// Median, spread and every value of one figure over the runs.
struct BenchStatistic: Encodable, Sendable {
    let median: Double
    let min: Double
    let max: Double
    let values: [Double]

    init(_ values: [Double]) {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        let median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        self.median = Self.rounded(median)
        self.min = Self.rounded(sorted.first ?? 0)
        self.max = Self.rounded(sorted.last ?? 0)
        self.values = values.map(Self.rounded)
    }

    /// Three decimals: finer than any of these measurements can resolve.
    private static func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
}

/// One scenario over all its runs.
struct BenchScenarioResult: Encodable, Sendable {
    let name: String
    let description: String
    let metrics: [String: BenchStatistic]
    /// Command name -> median calls per job, for the throughput scenarios.
    let commandCallsPerJob: [String: Double]?
    /// The metrics in the order the scenario reported them (for the table).
    let order: [BenchMetric]

    private enum CodingKeys: String, CodingKey { case name, description, metrics, commandCallsPerJob }

    init(_ scenario: BenchScenario, _ parameters: BenchParameters, samples: [BenchSample]) {
        name = scenario.rawValue
        description = scenario.summary(parameters)
        var order: [BenchMetric] = []
        var values: [String: [Double]] = [:]
        for sample in samples {
            for (metric, value) in sample.metrics {
                if values[metric.key] == nil { order.append(metric) }
                values[metric.key, default: []].append(value)
            }
        }
        self.order = order
        metrics = values.mapValues(BenchStatistic.init)
        let commands = Set(samples.flatMap(\.commandCallsPerJob.keys))
        let perCommand = Dictionary(
            uniqueKeysWithValues: commands.map { command in (command, BenchStatistic(samples.map { $0.commandCallsPerJob[command] ?? 0 }).median) })
        commandCallsPerJob = perCommand.isEmpty ? nil : perCommand
    }
}

/// The machine the numbers belong to.
struct BenchMachine: Encodable, Sendable {
    let cores: Int
    let cpuModel: String
    let memoryMB: Int
    let os: String
    let redisVersion: String

    init(redisVersion: String) {
        cores = ProcessInfo.processInfo.activeProcessorCount
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":", maxSplits: 1).last
        cpuModel = model.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        memoryMB = Int(ProcessInfo.processInfo.physicalMemory / 1_048_576)
        os = ProcessInfo.processInfo.operatingSystemVersionString
        self.redisVersion = redisVersion
    }
}

/// Everything `spool bench` found: printed as a table or written as JSON.
struct BenchReport: Encodable, Sendable {
    let machine: BenchMachine
    let runs: Int
    let startedAt: String
    let parameters: BenchParameters
    /// Redis CPU µs per poll of a counter, taken out of the figures of
    /// scenarios that poll.
    let pollCPUMicros: Double
    let scenarios: [BenchScenarioResult]

    /// Sorted snake_case keys, like every other JSON the CLI prints.
    func json() throws -> String { try Output.jsonText(self) }

    /// A heading, one block of rows per scenario, what each scenario did, and
    /// which Redis commands each job cost.
    func printTable() {
        print(
            "spool bench: \(runs) run\(runs == 1 ? "" : "s") per scenario; spread = (max - min) / median; "
                + "Redis \(machine.redisVersion), \(machine.cores) cores (\(machine.cpuModel))")
        print("")
        printRows()
        print("")
        print("Scenarios:")
        for scenario in scenarios { print("  \(scenario.name): \(scenario.description)") }
        let withCommands = scenarios.filter { $0.commandCallsPerJob != nil }
        if !withCommands.isEmpty {
            print("")
            print("Redis commands per job (median; includes commands called from Lua):")
            for scenario in withCommands { print("  \(scenario.name): \(Self.topCommands(scenario.commandCallsPerJob ?? [:]))") }
        }
    }

    private func printRows() {
        let header = ["scenario", "metric", "median", "min", "max", "spread"]
        var groups: [[[String]]] = []
        for scenario in scenarios {
            let rows = scenario.order.enumerated().compactMap { i, metric -> [String]? in
                guard let s = scenario.metrics[metric.key] else { return nil }
                let spread = s.median != 0 ? String(format: "%.1f%%", (s.max - s.min) / abs(s.median) * 100) : "-"
                return [
                    i == 0 ? scenario.name : "", metric.label, Self.format(s.median, metric), Self.format(s.min, metric), Self.format(s.max, metric),
                    spread,
                ]
            }
            groups.append(rows.isEmpty ? [[scenario.name, "(no figures)", "", "", "", ""]] : rows)
        }
        // An empty line between scenarios.
        let starts = groups.indices.dropFirst().map { g in groups[..<g].reduce(0) { $0 + $1.count } }
        Output.printTable(header, Array(groups.joined()), numeric: [2, 3, 4, 5], gapsBefore: Set(starts))
    }

    private static func format(_ value: Double, _ metric: BenchMetric) -> String {
        String(format: "%.\(metric.decimals)f", value)
    }

    /// The commands with the most calls per job, e.g. "evalsha 1.00, hset 1.00".
    private static func topCommands(_ perJob: [String: Double]) -> String {
        let top = perJob.filter { $0.value >= 0.005 }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(8)
        return top.map { "\($0.key) " + String(format: "%.2f", $0.value) }.joined(separator: ", ")
    }
}
