import Spool
import Synchronization

/// A few `SpoolClient`s used in turn. Each holds one Redis connection on its
/// own serial queue, so a slow call (a Redis that is not answering) holds up
/// only the requests that drew the same client.
final class ClientPool: Sendable {
    private let clients: [SpoolClient]
    private let next = Atomic<UInt>(0)

    init(configuration: SpoolConfiguration, size: Int) {
        clients = (0..<max(1, size)).map { SpoolClient(configuration: configuration, label: "spool.serve.\($0)") }
    }

    /// The next client in turn.
    var client: SpoolClient {
        let n = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return clients[Int(n % UInt(clients.count))]
    }

    var configuration: SpoolConfiguration { clients[0].configuration }
}
