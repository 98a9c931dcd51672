import ArgumentParser
import Foundation
import Spool

/// sysexits(3) codes the CLI exits with.
enum ExitStatus: Int32 {
    case usage = 64
    case dataError = 65
    case noInput = 66
    case unavailable = 69
    case software = 70
    case config = 78
}

/// A failure the CLI reports as one line on stderr and an exit status.
struct CLIError: Error, CustomStringConvertible {
    let status: ExitStatus
    let message: String

    init(_ status: ExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    var description: String { message }

    static func usage(_ message: String) -> CLIError { CLIError(.usage, message) }

    /// The one place a Spool error code becomes an exit status.
    static func status(for code: SpoolError.Code) -> ExitStatus {
        switch code {
        case .invalidInput: .usage
        case .jobNotFound: .noInput
        case .invalidPayload, .wrongState, .duplicate: .dataError
        case .unavailable: .unavailable
        case .configuration: .config
        case .leaseLost, .redis: .software
        }
    }

    init(_ error: SpoolError) {
        self.init(Self.status(for: error.code), error.description)
    }
}

/// Runs a subcommand's body: any error becomes `spool: <message>` on stderr and
/// an `ExitCode`, so ArgumentParser prints neither usage text nor a trace.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        throw fail(error)
    } catch let error as SpoolError {
        throw fail(CLIError(error))
    } catch let error as ExitCode {
        throw error
    } catch {
        throw fail(CLIError(.software, "unexpected error: \(error)"))
    }
}

private func fail(_ error: CLIError) -> ExitCode {
    printError("spool: " + Output.terminalSafe(error.message.replacingOccurrences(of: "\n", with: " ")))
    return ExitCode(error.status.rawValue)
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Throws a usage error unless `name` is a valid queue or job type name.
func checkName(_ name: String, _ what: String) throws(CLIError) {
    guard Names.isValid(name) else {
        throw .usage("\(what) \"\(name)\" is not valid: it \(Names.rule)")
    }
}

/// Throws "no such job" unless `id` has the shape of a job id (QUEUE.SUFFIX).
func checkJobID(_ id: String) throws(CLIError) {
    guard JobID.queue(of: id) != nil else {
        throw CLIError(.noInput, "no such job \"\(id)\" (job ids look like QUEUE.SUFFIX, as printed by spool enqueue)")
    }
}
