import Spool
import Testing

/// Expected times are written as UTC ISO strings ("2024-02-29T00:00:00Z") and converted
/// with the small civil-date helpers at the bottom, which `helpersMatchDateCommand`
/// pins to epoch values checked with `date -u -d <ISO> +%s`.
@Suite("CronSchedule")
struct CronScheduleTests {
    // MARK: - Parsing: intervals, macros, normalized text

    @Test func intervalForms() throws {
        #expect(try CronSchedule(parsing: "every 30s").description == "every 30s")
        #expect(try CronSchedule(parsing: "@every 30s").description == "every 30s")
        #expect(try CronSchedule(parsing: "  EVERY   5M ").description == "every 5m")
        #expect(try CronSchedule(parsing: "@Every 2h").description == "every 2h")
        #expect(try CronSchedule(parsing: "every 10").description == "every 10s")
        #expect(try CronSchedule(parsing: "every 1d").description == "every 1d")
        #expect(try CronSchedule(parsing: "every 366d").description == "every 366d", "a year at most, a leap one included")
        #expect(try CronSchedule(parsing: "every 30 s").description == "every 30s")
        #expect(try CronSchedule(parsing: "every 30s") == CronSchedule(parsing: "@every 30S"))
        #expect(try CronSchedule(parsing: "every 30s") != CronSchedule(parsing: "every 31s"))

        // The unit scales the period: ticks at multiples of 300 s, 7200 s, 10 s, 86400 s since the epoch.
        #expect(try CronSchedule(parsing: "every 5m").next(after: 1_000) == 300_000)
        #expect(try CronSchedule(parsing: "every 2h").next(after: 1_000) == 7_200_000)
        #expect(try CronSchedule(parsing: "every 10").next(after: 1_000) == 10_000)
        #expect(try CronSchedule(parsing: "every 1d").next(after: ms("2024-03-10T10:00:00Z")) == ms("2024-03-11T00:00:00Z"))
    }

    @Test func macros() throws {
        let after = "2024-03-15T10:00:30Z"  // a Friday
        #expect(try fires("@yearly", after: after) == ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"])
        #expect(try fires("@annually", after: after) == ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"])
        #expect(try fires("@monthly", after: after) == ["2024-04-01T00:00:00Z", "2024-05-01T00:00:00Z"])
        #expect(try fires("@weekly", after: after) == ["2024-03-17T00:00:00Z", "2024-03-24T00:00:00Z"])
        #expect(try fires("@daily", after: after) == ["2024-03-16T00:00:00Z", "2024-03-17T00:00:00Z"])
        #expect(try fires("@midnight", after: after) == ["2024-03-16T00:00:00Z", "2024-03-17T00:00:00Z"])
        #expect(try fires("@hourly", after: after) == ["2024-03-15T11:00:00Z", "2024-03-15T12:00:00Z"])
        #expect(try fires("@minutely", after: after) == ["2024-03-15T10:01:00Z", "2024-03-15T10:02:00Z"])
        #expect(try CronSchedule(parsing: "@DAILY").description == "@daily")
        #expect(try CronSchedule(parsing: "@daily") != CronSchedule(parsing: "@midnight"))
    }

    @Test func cronTextIsNormalized() throws {
        #expect(try CronSchedule(parsing: " 0  9 * * mon-fri ").description == "0 9 * * MON-FRI")
        #expect(try CronSchedule(parsing: "5 * * * * *").description == "5 * * * * *")
        #expect(try CronSchedule(parsing: "0 0 1 jan *") == CronSchedule(parsing: "0 0 1 JAN *"))
    }

    // MARK: - Parsing: field syntax, observed through next()

    @Test func lists() throws {
        #expect(
            try fires("0 0,12 * * *", after: "2024-03-10T06:00:00Z", count: 3) == [
                "2024-03-10T12:00:00Z", "2024-03-11T00:00:00Z", "2024-03-11T12:00:00Z",
            ])
    }

    @Test func ranges() throws {
        #expect(
            try fires("0 9-11 * * *", after: "2024-03-10T10:30:00Z", count: 3) == [
                "2024-03-10T11:00:00Z", "2024-03-11T09:00:00Z", "2024-03-11T10:00:00Z",
            ])
    }

    @Test func steps() throws {
        // a-b/n: hours 1, 4, 7, 10.
        #expect(
            try fires("0 1-10/3 * * *", after: "2024-03-10T00:00:00Z", count: 5) == [
                "2024-03-10T01:00:00Z", "2024-03-10T04:00:00Z", "2024-03-10T07:00:00Z", "2024-03-10T10:00:00Z",
                "2024-03-11T01:00:00Z",
            ])
        // n/step means n through the end of the field: hours 20 and 22.
        #expect(
            try fires("0 20/2 * * *", after: "2024-03-10T00:00:00Z", count: 3) == [
                "2024-03-10T20:00:00Z", "2024-03-10T22:00:00Z", "2024-03-11T20:00:00Z",
            ])
        // */n on months: January, April, July, October.
        #expect(
            try fires("0 0 1 */3 *", after: "2024-02-01T00:00:00Z", count: 4) == [
                "2024-04-01T00:00:00Z", "2024-07-01T00:00:00Z", "2024-10-01T00:00:00Z", "2025-01-01T00:00:00Z",
            ])
        // */2 on day-of-week: Sunday, Tuesday, Thursday, Saturday (not 7 again).
        // 2024-03-10 is a Sunday.
        #expect(
            try fires("0 0 * * */2", after: "2024-03-09T12:00:00Z", count: 5) == [
                "2024-03-10T00:00:00Z", "2024-03-12T00:00:00Z", "2024-03-14T00:00:00Z", "2024-03-16T00:00:00Z",
                "2024-03-17T00:00:00Z",
            ])
        // n/step on day-of-week ends at Saturday: 1/2 is Monday, Wednesday, Friday (never 7 = Sunday).
        #expect(
            try fires("0 0 * * 1/2", after: "2024-03-09T12:00:00Z", count: 4) == [
                "2024-03-11T00:00:00Z", "2024-03-13T00:00:00Z", "2024-03-15T00:00:00Z", "2024-03-18T00:00:00Z",
            ])
    }

    @Test func monthAndDayNamesAreCaseInsensitive() throws {
        #expect(
            try fires("0 0 1 jan,Jul *", after: "2024-03-10T00:00:00Z", count: 3) == [
                "2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-07-01T00:00:00Z",
            ])
        // 2024-03-15 is a Friday, 2024-03-17 a Sunday.
        #expect(
            try fires("0 0 * * fri,Sun", after: "2024-03-10T12:00:00Z", count: 3) == [
                "2024-03-15T00:00:00Z", "2024-03-17T00:00:00Z", "2024-03-22T00:00:00Z",
            ])
        #expect(
            try fires("0 0 * Feb-mar MON", after: "2024-03-20T00:00:00Z", count: 2) == [
                "2024-03-25T00:00:00Z", "2025-02-03T00:00:00Z",
            ])
    }

    @Test func sundayIsZeroOrSeven() throws {
        let sundays = ["2024-03-10T00:00:00Z", "2024-03-17T00:00:00Z"]
        #expect(try fires("0 0 * * 0", after: "2024-03-06T00:00:00Z") == sundays)
        #expect(try fires("0 0 * * 7", after: "2024-03-06T00:00:00Z") == sundays)
        #expect(try fires("0 0 * * SUN", after: "2024-03-06T00:00:00Z") == sundays)
        // 5-7 is Friday, Saturday, Sunday.
        #expect(
            try fires("0 0 * * 5-7", after: "2024-03-06T00:00:00Z", count: 4) == [
                "2024-03-08T00:00:00Z", "2024-03-09T00:00:00Z", "2024-03-10T00:00:00Z", "2024-03-15T00:00:00Z",
            ])
    }

    @Test func dayOfMonthSkipsShortMonths() throws {
        #expect(
            try fires("0 0 31 * *", after: "2024-04-01T00:00:00Z", count: 4) == [
                "2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z", "2024-10-31T00:00:00Z",
            ])
    }

    // MARK: - Parsing: errors

    @Test(arguments: [
        ("", "schedule is empty"),
        ("   ", "schedule is empty"),
        ("* * *", "cron expression needs 5 or 6 fields, got 3"),
        ("* * * * * * *", "cron expression needs 5 or 6 fields, got 7"),
        ("60 * * * * *", "cron field \"second\": 60 is out of range 0-59"),
        ("60 * * * *", "cron field \"minute\": 60 is out of range 0-59"),
        ("0 25 * * *", "cron field \"hour\": 25 is out of range 0-23"),
        ("0 0 0 * *", "cron field \"day-of-month\": 0 is out of range 1-31"),
        ("0 0 32 * *", "cron field \"day-of-month\": 32 is out of range 1-31"),
        ("0 0 * 13 *", "cron field \"month\": 13 is out of range 1-12"),
        ("0 0 * * 8", "cron field \"day-of-week\": 8 is out of range 0-7"),
        ("0 0-99999999999999999999 * * *", "cron field \"hour\": 99999999999999999999 is out of range 0-23"),
        ("x * * * *", "cron field \"minute\": \"x\" is not a number"),
        ("0 MON * * *", "cron field \"hour\": \"MON\" is not a number"),
        ("0 0 * FOO *", "cron field \"month\": \"FOO\" is not a number or a month name (JAN-DEC)"),
        ("0 0 * * FUN", "cron field \"day-of-week\": \"FUN\" is not a number or a day name (SUN-SAT)"),
        ("0 0 * * JAN", "cron field \"day-of-week\": \"JAN\" is not a number or a day name (SUN-SAT)"),
        ("*/0 * * * *", "cron field \"minute\": step 0 in \"*/0\" must be at least 1"),
        ("*/x * * * *", "cron field \"minute\": step \"x\" in \"*/x\" is not a number"),
        ("0 1-5/ * * *", "cron field \"hour\": step \"\" in \"1-5/\" is not a number"),
        ("1/2/3 * * * *", "cron field \"minute\": \"1/2/3\" has more than one step"),
        ("0 5-2 * * *", "cron field \"hour\": range \"5-2\" runs backwards (5-2)"),
        ("0 0 * * FRI-SUN", "cron field \"day-of-week\": range \"FRI-SUN\" runs backwards (5-0)"),
        ("0 1-2-3 * * *", "cron field \"hour\": \"1-2-3\" is not a valid range"),
        ("0 -5 * * *", "cron field \"hour\": \"-5\" is not a valid range"),
        ("0 0 *-5 * *", "cron field \"day-of-month\": \"*-5\" is not a valid range"),
        ("1,,2 * * * *", "cron field \"minute\": empty list item in \"1,,2\""),
        ("0 0 * * 1,", "cron field \"day-of-week\": empty list item in \"1,\""),
        ("every 0s", "interval must be a positive number of seconds: every 0s"),
        ("every", "interval must be a positive number of seconds: every"),
        ("@every -5m", "interval must be a positive number of seconds: @every -5m"),
        ("every 1.5m", "interval must be a positive number of seconds: every 1.5m"),
        ("every 5x", "interval unit \"x\" is not one of s, m, h, d: every 5x"),
        ("every 5min", "interval unit \"min\" is not one of s, m, h, d: every 5min"),
        ("every 99999999999999999999s", "interval must be at most 366 days: every 99999999999999999999s"),
        ("every 9999999999999999h", "interval must be at most 366 days: every 9999999999999999h"),
        ("every 367d", "interval must be at most 366 days: every 367d"),
        ("every 31622401s", "interval must be at most 366 days: every 31622401s"),
        ("@daily 5", "macro \"@daily\" takes no fields, got \"@daily 5\""),
        (
            "@fortnightly",
            "unknown macro \"@fortnightly\": expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, "
                + "@minutely or @every"
        ),
    ])
    func errorMessages(text: String, message: String) {
        do throws(CronScheduleError) {
            let schedule = try CronSchedule(parsing: text)
            Issue.record("\"\(text)\" parsed as \(schedule), expected error: \(message)")
        } catch {
            #expect(error.message == message)
            #expect(error.description == message)
        }
    }

    // MARK: - next(after:)

    @Test func everySecondCrossesYearEnd() throws {
        #expect(
            try fires("* * * * * *", after: "2024-12-31T23:59:58Z", count: 3) == [
                "2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z",
            ])
        // Strictly after, and whole seconds: 0.5 s into a second fires at the next one.
        let schedule = try CronSchedule(parsing: "* * * * * *")
        #expect(schedule.next(after: ms("2024-12-31T23:59:59Z") + 500) == ms("2025-01-01T00:00:00Z"))
        #expect(schedule.next(after: -1) == 0)
        #expect(schedule.next(after: -1_500) == -1_000)
    }

    @Test func everyFifteenMinutes() throws {
        #expect(
            try fires("*/15 * * * *", after: "2024-03-10T10:07:30Z", count: 4) == [
                "2024-03-10T10:15:00Z", "2024-03-10T10:30:00Z", "2024-03-10T10:45:00Z", "2024-03-10T11:00:00Z",
            ])
        #expect(try fires("*/15 * * * *", after: "2024-03-10T10:15:00Z", count: 1) == ["2024-03-10T10:30:00Z"])
        #expect(try fires("*/15 * * * *", after: "2024-12-31T23:59:00Z", count: 1) == ["2025-01-01T00:00:00Z"])
    }

    @Test func weekdaysSkipTheWeekend() throws {
        // 2024-03-08 is a Friday; 03-09/03-10 the weekend; 03-11 a Monday.
        #expect(
            try fires("0 9 * * MON-FRI", after: "2024-03-08T08:59:59Z", count: 3) == [
                "2024-03-08T09:00:00Z", "2024-03-11T09:00:00Z", "2024-03-12T09:00:00Z",
            ])
        #expect(try fires("0 9 * * MON-FRI", after: "2024-03-08T09:00:00Z", count: 1) == ["2024-03-11T09:00:00Z"])
    }

    @Test func leapDay() throws {
        #expect(try fires("0 0 29 2 *", after: "2023-06-01T00:00:00Z", count: 2) == ["2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"])
        #expect(try fires("0 0 29 2 *", after: "2024-02-29T00:00:00Z", count: 1) == ["2028-02-29T00:00:00Z"])
        // 2100 is not a leap year: the next Feb 29 after 2097 is in 2104, seven years on.
        #expect(try fires("0 0 29 2 *", after: "2097-01-01T00:00:00Z", count: 1) == ["2104-02-29T00:00:00Z"])
        // Feb 28 is followed by Mar 1 in 2023 and by Feb 29 in 2024.
        #expect(try fires("0 0 * 2,3 *", after: "2023-02-28T00:00:00Z", count: 1) == ["2023-03-01T00:00:00Z"])
        #expect(try fires("0 0 * 2,3 *", after: "2024-02-28T00:00:00Z", count: 1) == ["2024-02-29T00:00:00Z"])
    }

    @Test func firstOfMonthCrossesYearEnd() throws {
        #expect(
            try fires("0 0 1 * *", after: "2024-12-15T12:00:00Z", count: 3) == [
                "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z",
            ])
    }

    @Test func weekendMornings() throws {
        // 2024-03-06 is a Wednesday.
        #expect(
            try fires("30 2 * * 0,6", after: "2024-03-06T00:00:00Z", count: 4) == [
                "2024-03-09T02:30:00Z", "2024-03-10T02:30:00Z", "2024-03-16T02:30:00Z", "2024-03-17T02:30:00Z",
            ])
    }

    @Test func dayOfMonthOrDayOfWeek() throws {
        // Both day fields restricted: the 13th OR any Friday. October 2024: Fridays 11, 18, 25;
        // the 13th is a Sunday. November 2024: Fridays 1, 8, 15; the 13th is a Wednesday.
        #expect(
            try fires("0 0 13 * FRI", after: "2024-10-05T00:00:00Z", count: 8) == [
                "2024-10-11T00:00:00Z", "2024-10-13T00:00:00Z", "2024-10-18T00:00:00Z", "2024-10-25T00:00:00Z",
                "2024-11-01T00:00:00Z", "2024-11-08T00:00:00Z", "2024-11-13T00:00:00Z", "2024-11-15T00:00:00Z",
            ])
        // Only one day field restricted: AND (here: just the 13th).
        #expect(
            try fires("0 0 13 * *", after: "2024-10-05T00:00:00Z", count: 2) == [
                "2024-10-13T00:00:00Z", "2024-11-13T00:00:00Z",
            ])
    }

    @Test func hourly() throws {
        #expect(
            try fires("@hourly", after: "2024-12-31T22:59:59Z", count: 3) == [
                "2024-12-31T23:00:00Z", "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z",
            ])
        #expect(try fires("@hourly", after: "2024-03-10T10:00:00Z", count: 1) == ["2024-03-10T11:00:00Z"])
    }

    @Test func intervalIsEpochAligned() throws {
        let schedule = try CronSchedule(parsing: "every 30s")
        #expect(schedule.next(after: 1_000) == 30_000)
        #expect(schedule.next(after: 29_999) == 30_000)
        #expect(schedule.next(after: 30_000) == 60_000)
        #expect(schedule.next(after: 0) == 30_000)
        #expect(schedule.next(after: -1) == 0)
        #expect(schedule.next(after: -30_000) == 0)
        #expect(schedule.next(after: ms("2024-03-10T10:00:10Z")) == ms("2024-03-10T10:00:30Z"))
        #expect(schedule.next(after: Int.max - 1) == nil)
    }

    @Test func sixFieldsStartWithSeconds() throws {
        #expect(
            try fires("5 * * * * *", after: "2024-03-10T10:00:04Z", count: 3) == [
                "2024-03-10T10:00:05Z", "2024-03-10T10:01:05Z", "2024-03-10T10:02:05Z",
            ])
        #expect(try fires("5 * * * * *", after: "2024-03-10T10:00:05Z", count: 1) == ["2024-03-10T10:01:05Z"])
        // A five-field expression fires at second 0.
        #expect(try fires("5 * * * *", after: "2024-03-10T10:00:04Z", count: 1) == ["2024-03-10T10:05:00Z"])
    }

    @Test func impossibleDatesReturnNil() throws {
        #expect(try CronSchedule(parsing: "0 0 30 2 *").next(after: ms("2024-01-01T00:00:00Z")) == nil)
        #expect(try CronSchedule(parsing: "0 0 31 4,6,9,11 *").next(after: ms("2024-01-01T00:00:00Z")) == nil)
        #expect(try CronSchedule(parsing: "0 0 * * *").next(after: Int.max - 1) == nil)
    }

    // MARK: - Helpers

    @Test func helpersMatchDateCommand() {
        // Each value from `date -u -d <ISO> +%s`.
        let anchors: [(String, Int)] = [
            ("2024-02-29T00:00:00Z", 1_709_164_800),
            ("2025-01-01T00:00:00Z", 1_735_689_600),
            ("2104-02-29T00:00:00Z", 4_233_686_400),
            ("1969-12-31T23:59:59Z", -1),
            ("2000-03-01T12:34:56Z", 951_914_096),
        ]
        for (text, seconds) in anchors {
            #expect(ms(text) == seconds * 1000, "\(text)")
            #expect(iso(seconds * 1000) == text)
        }
    }

    /// The first `count` fire times of `text` after the ISO time `after`, as ISO strings.
    func fires(_ text: String, after: String, count: Int = 2) throws -> [String] {
        let schedule = try CronSchedule(parsing: text)
        var result: [String] = []
        var time = ms(after)
        for _ in 0..<count {
            guard let next = schedule.next(after: time) else { break }
            result.append(iso(next))
            time = next
        }
        return result
    }
}

/// Unix milliseconds of "YYYY-MM-DDTHH:MM:SSZ" (UTC).
private func ms(_ text: String) -> Int {
    let numbers = text.split(whereSeparator: { !$0.isNumber }).map { Int($0)! }
    let days = daysFromCivil(numbers[0], numbers[1], numbers[2])
    return ((days * 24 + numbers[3]) * 60 + numbers[4]) * 60_000 + numbers[5] * 1000
}

/// "YYYY-MM-DDTHH:MM:SSZ" (UTC) of whole-second Unix milliseconds.
private func iso(_ millis: Int) -> String {
    let seconds = millis / 1000 - (millis % 1000 < 0 ? 1 : 0)
    let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
    let secondOfDay = seconds - days * 86400
    let (year, month, day) = civilFromDays(days)
    func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
    return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
}

/// Days since 1970-01-01 (Howard Hinnant's days_from_civil), for years >= 0.
private func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = y / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    return era * 146097 + yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear - 719468
}

/// The civil date of days since 1970-01-01 (Howard Hinnant's civil_from_days), for years >= 0.
private func civilFromDays(_ days: Int) -> (Int, Int, Int) {
    let z = days + 719468
    let era = z / 146097
    let dayOfEra = z - era * 146097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let shiftedMonth = (5 * dayOfYear + 2) / 153
    let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, dayOfYear - (153 * shiftedMonth + 2) / 5 + 1)
}
