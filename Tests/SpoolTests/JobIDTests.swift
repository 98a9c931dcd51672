import Spool
import Testing

@Suite("Job ids")
struct JobIDTests {
    /// Spool's suffix: 9 base-32 digits of the time and 8 random ones, so ids
    /// of one queue sort by creation time, including across digit carries.
    @Test func idsAreShortAndSortByCreationTime() {
        let times = [0, 31, 32, 1_023, 1_024, 1_732_264_000_123, 1_893_463_200_000, (1 << 45) - 1]
            + (0..<200).map { _ in Int.random(in: 0..<(1 << 45)) }
        let sorted = times.sorted()
        let ids = sorted.map { JobID.make(queue: "emails", nowMillis: $0) }
        for (earlier, later) in zip(zip(sorted, ids), zip(sorted.dropFirst(), ids.dropFirst())) where earlier.0 < later.0 {
            #expect(earlier.1 < later.1, "\(earlier.1) (\(earlier.0) ms) should sort before \(later.1) (\(later.0) ms)")
        }
        for id in ids {
            let suffix = id.dropFirst("emails.".count)
            #expect(suffix.count == 17 && suffix.allSatisfy { "0123456789abcdefghjkmnpqrstvwxyz".contains($0) }, "\(id)")
            #expect(JobID.queue(of: id) == "emails")
        }
        // 40 random bits: ids made in the same millisecond differ.
        let same = Set((0..<1_000).map { _ in JobID.make(queue: "q.with.dots", nowMillis: 1_732_264_000_123) })
        #expect(same.count == 1_000)
        #expect(same.allSatisfy { JobID.queue(of: $0) == "q.with.dots" })
    }
}
