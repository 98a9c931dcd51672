/// When a recurring job fires: a fixed interval (`every 30s`), a macro (`@daily`),
/// or a cron expression (`*/15 9-17 * * MON-FRI`). All times are UTC.
///
/// Parse once with ``init(parsing:)``, then ask ``next(after:)`` for fire times.
/// Two schedules are equal when they were parsed from the same normalized text
/// (see ``description``); `@daily` and `0 0 * * *` fire at the same times but are
/// not equal.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    /// How far ahead ``next(after:)`` looks, in calendar years. Eight, not five,
    /// so that a Feb 29 schedule still finds its day across 2100 (not a leap year).
    static let searchYears = 8

    private enum Rule: Sendable, Equatable {
        /// Fires at every multiple of this many seconds since the Unix epoch.
        case interval(seconds: Int)
        /// Fires when the UTC calendar time matches every field.
        case calendar(Fields)
    }

    /// The values each field allows, as bit sets (bit `n` set means value `n` matches).
    fileprivate struct Fields: Sendable, Equatable {
        var seconds: UInt64
        var minutes: UInt64
        var hours: UInt64
        var daysOfMonth: UInt64
        var months: UInt64
        /// 0 = Sunday ... 6 = Saturday (a 7 in the text is stored as 0).
        var daysOfWeek: UInt64
        /// The day-of-month field is not a bare `*`.
        var dayOfMonthRestricted: Bool
        /// The day-of-week field is not a bare `*`.
        var dayOfWeekRestricted: Bool
    }

    private let rule: Rule
    private let text: String

    /// Parses "every 30s" / "every 5m" / "every 2h" / "@every 30s" style intervals (also plain "every 10" = seconds),
    /// the macros @yearly @annually @monthly @weekly @daily @midnight @hourly @minutely,
    /// and cron expressions with 5 fields (minute hour day-of-month month day-of-week) or 6 fields (seconds first).
    /// Fields support *, numbers, lists a,b,c, ranges a-b, steps */n and a-b/n and n/step (start/step), month names JAN-DEC
    /// and day names SUN-SAT (case-insensitive), day-of-week 0-7 with 0 and 7 = Sunday.
    /// Standard cron day rule: if both day-of-month and day-of-week are restricted (not *), a day matches when EITHER matches.
    ///
    /// Details:
    /// - Keywords, units, macros and names are case-insensitive; whitespace between tokens may be any amount.
    /// - Interval units are `s`, `m`, `h` and `d`; the count must be a positive whole number.
    /// - A field counts as restricted unless it is exactly `*` (so `*/2` in day-of-month is restricted).
    /// - `n/step` runs from `n` to the field's maximum; for day-of-week, `*` and `n/step` end at 6 (Saturday),
    ///   while 7 may be written as a value or as a range end (`5-7` is Friday, Saturday, Sunday).
    /// - A range must run upwards: `5-2` and `FRI-SUN` are errors (write `FRI-7`).
    ///
    /// - Throws: ``CronScheduleError`` naming the field and the offending token.
    public init(parsing text: String) throws(CronScheduleError) {
        let tokens = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let first = tokens.first else {
            throw CronScheduleError("schedule is empty")
        }
        let keyword = first.lowercased()
        if keyword == "every" || keyword == "@every" {
            let (seconds, normalized) = try Self.parseInterval(
                tokens.dropFirst().joined(), source: tokens.joined(separator: " "))
            self.rule = .interval(seconds: seconds)
            self.text = normalized
            return
        }
        if keyword.hasPrefix("@") {
            guard let expansion = Self.macroExpansion(keyword) else {
                throw CronScheduleError(
                    "unknown macro \"\(first)\": expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, "
                        + "@minutely or @every")
            }
            guard tokens.count == 1 else {
                throw CronScheduleError("macro \"\(first)\" takes no fields, got \"\(tokens.joined(separator: " "))\"")
            }
            self.rule = .calendar(try Self.parseFields(expansion.split(separator: " ").map(String.init)))
            self.text = keyword
            return
        }
        guard tokens.count == 5 || tokens.count == 6 else {
            throw CronScheduleError("cron expression needs 5 or 6 fields, got \(tokens.count)")
        }
        self.rule = .calendar(try Self.parseFields(tokens))
        self.text = tokens.map { $0.uppercased() }.joined(separator: " ")
    }

    /// The first fire time strictly after `after` (Unix ms), in UTC, at whole seconds. For intervals: the next multiple
    /// of the interval since the Unix epoch strictly after `after` (so all processes agree on the ticks).
    /// Returns nil only if no time matches within 5 years (e.g. "0 0 30 2 *").
    ///
    /// The search runs to the end of the ``searchYears``-th calendar year after the year of
    /// `after` (more than five years, so Feb 29 is found even across 2100), jumping month by
    /// month, day by day, and straight to the next allowed hour, minute and second: about a
    /// thousand steps in the worst case.
    /// Also nil if the answer would not fit in an `Int` of milliseconds.
    public func next(after millis: Int) -> Int? {
        switch rule {
        case .interval(let seconds):
            let period = seconds * 1000  // cannot overflow: checked when parsing
            let (product, overflow) = (Self.floorDivide(millis, period) + 1).multipliedReportingOverflow(by: period)
            return overflow ? nil : product
        case .calendar(let fields):
            return fields.firstMatch(atOrAfterSecond: Self.floorDivide(millis, 1000) + 1)
        }
    }

    /// The normalized text it was parsed from: tokens separated by one space,
    /// cron fields and names upper-cased, macros lower-cased, intervals as
    /// `every <count><unit>` (`@every 30S` and `every 30` both give `every 30s`).
    public var description: String { text }
}

/// Why a schedule could not be parsed; ``message`` names the field and the bad token,
/// e.g. `cron field "hour": 25 is out of range 0-23`.
public struct CronScheduleError: Error, Sendable, CustomStringConvertible {
    /// The complete, human-readable reason.
    public let message: String

    init(_ message: String) {
        self.message = message
    }

    /// The same as ``message``.
    public var description: String { message }
}

// MARK: - Parsing

extension CronSchedule {
    /// Static facts about one cron field.
    fileprivate struct FieldSpec: Sendable {
        /// Used in error messages: `cron field "<name>"`.
        var name: String
        /// Smallest and largest value that may be written.
        var minimum: Int
        var maximum: Int
        /// Where `*` and `n/step` end (differs from `maximum` only for day-of-week).
        var starMaximum: Int
        /// Upper-case names for `minimum`, `minimum + 1`, ... (empty when names are not allowed).
        var names: [String]
        /// Shown when a token is neither a number nor a name.
        var expected: String
        /// Day-of-week: 7 is another way to write Sunday (0).
        var sevenIsSunday = false

        func error(_ text: String) -> CronScheduleError {
            CronScheduleError("cron field \"\(name)\": \(text)")
        }

        /// The numeric value of a number or a name, checked against the field's range.
        func value(_ token: Substring) throws(CronScheduleError) -> Int {
            if !token.isEmpty, token.allSatisfy({ $0.isASCII && $0.isNumber }) {
                guard let number = Int(token), number >= minimum, number <= maximum else {
                    throw error("\(token) is out of range \(minimum)-\(maximum)")
                }
                return number
            }
            if let index = names.firstIndex(of: token.uppercased()) {
                return minimum + index
            }
            throw error("\"\(token)\" is not \(expected)")
        }
    }

    private static let secondSpec = FieldSpec(
        name: "second", minimum: 0, maximum: 59, starMaximum: 59, names: [], expected: "a number")
    private static let minuteSpec = FieldSpec(
        name: "minute", minimum: 0, maximum: 59, starMaximum: 59, names: [], expected: "a number")
    private static let hourSpec = FieldSpec(
        name: "hour", minimum: 0, maximum: 23, starMaximum: 23, names: [], expected: "a number")
    private static let dayOfMonthSpec = FieldSpec(
        name: "day-of-month", minimum: 1, maximum: 31, starMaximum: 31, names: [], expected: "a number")
    private static let monthSpec = FieldSpec(
        name: "month", minimum: 1, maximum: 12, starMaximum: 12,
        names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
        expected: "a number or a month name (JAN-DEC)")
    private static let dayOfWeekSpec = FieldSpec(
        name: "day-of-week", minimum: 0, maximum: 7, starMaximum: 6,
        names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        expected: "a number or a day name (SUN-SAT)", sevenIsSunday: true)

    /// The cron expression a macro stands for, or nil for an unknown macro.
    private static func macroExpansion(_ macro: String) -> String? {
        switch macro {
        case "@yearly", "@annually": "0 0 1 1 *"
        case "@monthly": "0 0 1 * *"
        case "@weekly": "0 0 * * 0"
        case "@daily", "@midnight": "0 0 * * *"
        case "@hourly": "0 * * * *"
        case "@minutely": "* * * * *"
        default: nil
        }
    }

    /// Parses the part after `every` (`30s`, `5m`, `10`), returning the period in
    /// seconds and the normalized text. `source` is the whole schedule, for errors.
    private static func parseInterval(_ spec: String, source: String) throws(CronScheduleError) -> (Int, String) {
        let digits = spec.prefix { $0.isASCII && $0.isNumber }
        let unit = spec.dropFirst(digits.count).lowercased()
        guard !digits.isEmpty, unit.allSatisfy(\.isLetter) else {
            throw CronScheduleError("interval must be a positive number of seconds: \(source)")
        }
        let multiplier: Int
        switch unit {
        case "", "s": multiplier = 1
        case "m": multiplier = 60
        case "h": multiplier = 3600
        case "d": multiplier = 86400
        default: throw CronScheduleError("interval unit \"\(unit)\" is not one of s, m, h, d: \(source)")
        }
        guard let count = Int(digits) else {
            throw CronScheduleError("interval must be at most 366 days: \(source)")
        }
        guard count > 0 else {
            throw CronScheduleError("interval must be a positive number of seconds: \(source)")
        }
        // A year at most: longer ones put the next run past what a time
        // prints or a listing sorts sanely (and no one means them).
        let (seconds, overflow) = count.multipliedReportingOverflow(by: multiplier)
        guard !overflow, seconds <= 366 * 86400 else {
            throw CronScheduleError("interval must be at most 366 days: \(source)")
        }
        return (seconds, "every \(count)\(unit.isEmpty ? "s" : unit)")
    }

    /// Parses 5 fields (minute first, second 0) or 6 fields (second first).
    private static func parseFields(_ tokens: [String]) throws(CronScheduleError) -> Fields {
        let all = tokens.count == 6 ? tokens : ["0"] + tokens
        return Fields(
            seconds: try parseField(all[0], secondSpec),
            minutes: try parseField(all[1], minuteSpec),
            hours: try parseField(all[2], hourSpec),
            daysOfMonth: try parseField(all[3], dayOfMonthSpec),
            months: try parseField(all[4], monthSpec),
            daysOfWeek: try parseField(all[5], dayOfWeekSpec),
            dayOfMonthRestricted: all[3] != "*",
            dayOfWeekRestricted: all[5] != "*")
    }

    /// Parses one field (`*`, `5`, `1,2,3`, `1-5`, `*/15`, `1-30/2`, `10/5`, `MON-FRI`) into a bit set.
    private static func parseField(_ text: String, _ spec: FieldSpec) throws(CronScheduleError) -> UInt64 {
        var mask: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else {
                throw spec.error("empty list item in \"\(text)\"")
            }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else {
                throw spec.error("\"\(item)\" has more than one step")
            }
            var step = 1
            if parts.count == 2 {
                let stepText = parts[1]
                guard !stepText.isEmpty, stepText.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                    throw spec.error("step \"\(stepText)\" in \"\(item)\" is not a number")
                }
                step = Int(stepText) ?? Int.max  // an absurdly large step just matches the start
                guard step >= 1 else {
                    throw spec.error("step \(stepText) in \"\(item)\" must be at least 1")
                }
            }
            let base = parts[0]
            let low: Int
            let high: Int
            if base == "*" {
                low = spec.minimum
                high = spec.starMaximum
            } else {
                let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, !bounds.contains(where: { $0.isEmpty || $0 == "*" }) else {
                    throw spec.error("\"\(base)\" is not a valid range")
                }
                low = try spec.value(bounds[0])
                if bounds.count == 2 {
                    high = try spec.value(bounds[1])
                    guard low <= high else {
                        throw spec.error("range \"\(base)\" runs backwards (\(low)-\(high))")
                    }
                } else {
                    // "n/step" runs from n to the end of the field; plain "n" is just n.
                    high = parts.count == 2 ? max(low, spec.starMaximum) : low
                }
            }
            for value in stride(from: low, through: high, by: step) {
                mask |= 1 << UInt64(spec.sevenIsSunday && value == 7 ? 0 : value)
            }
        }
        return mask
    }
}

// MARK: - Searching

extension CronSchedule.Fields {
    /// The first matching time at or after `start` (Unix seconds), in Unix milliseconds.
    fileprivate func firstMatch(atOrAfterSecond start: Int) -> Int? {
        let startDay = CronSchedule.floorDivide(start, 86400)
        let secondOfDay = start - startDay * 86400
        var (year, month, day) = CronSchedule.civil(fromDays: startDay)
        var hour = secondOfDay / 3600
        var minute = secondOfDay / 60 % 60
        var second = secondOfDay % 60
        let lastYear = year + CronSchedule.searchYears

        // Each step either accepts a field or moves it (and resets the smaller ones);
        // a value past its field's end (minute 60, hour 24, day 32, month 13) finds no
        // match in the bit set, which carries into the next larger field.
        while year <= lastYear {
            guard let nextMonth = Self.nextValue(in: months, from: month) else {
                (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0)
                continue
            }
            if nextMonth != month {
                (month, day, hour, minute, second) = (nextMonth, 1, 0, 0, 0)
            }
            if day > CronSchedule.daysIn(month: month, year: year) {
                (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0)
                continue
            }
            if !dayMatches(year: year, month: month, day: day) {
                (day, hour, minute, second) = (day + 1, 0, 0, 0)
                continue
            }
            guard let nextHour = Self.nextValue(in: hours, from: hour) else {
                (day, hour, minute, second) = (day + 1, 0, 0, 0)
                continue
            }
            if nextHour != hour {
                (hour, minute, second) = (nextHour, 0, 0)
            }
            guard let nextMinute = Self.nextValue(in: minutes, from: minute) else {
                (hour, minute, second) = (hour + 1, 0, 0)
                continue
            }
            if nextMinute != minute {
                (minute, second) = (nextMinute, 0)
            }
            guard let nextSecond = Self.nextValue(in: seconds, from: second) else {
                (minute, second) = (minute + 1, 0)
                continue
            }
            let days = CronSchedule.daysFromCivil(year: year, month: month, day: day)
            let (dayStart, overflow1) = days.multipliedReportingOverflow(by: 86400)
            let (unixSeconds, overflow2) = dayStart.addingReportingOverflow(hour * 3600 + nextMinute * 60 + nextSecond)
            let (result, overflow3) = unixSeconds.multipliedReportingOverflow(by: 1000)
            return overflow1 || overflow2 || overflow3 ? nil : result
        }
        return nil
    }

    /// The cron day rule: when both day fields are restricted either may match,
    /// otherwise both must (an unrestricted field matches every day anyway).
    private func dayMatches(year: Int, month: Int, day: Int) -> Bool {
        let domMatches = daysOfMonth & (1 << UInt64(day)) != 0
        let weekday = CronSchedule.weekday(ofDays: CronSchedule.daysFromCivil(year: year, month: month, day: day))
        let dowMatches = daysOfWeek & (1 << UInt64(weekday)) != 0
        if dayOfMonthRestricted && dayOfWeekRestricted {
            return domMatches || dowMatches
        }
        return domMatches && dowMatches
    }

    /// The smallest value `>= from` in the bit set, or nil.
    private static func nextValue(in mask: UInt64, from: Int) -> Int? {
        guard from < 64 else { return nil }
        let remaining = mask & ~((UInt64(1) << UInt64(from)) &- 1)
        return remaining == 0 ? nil : remaining.trailingZeroBitCount
    }
}

// MARK: - Civil calendar (proleptic Gregorian, UTC)

extension CronSchedule {
    /// Division rounding towards negative infinity (`divisor` > 0).
    fileprivate static func floorDivide(_ value: Int, _ divisor: Int) -> Int {
        let quotient = value / divisor
        return value % divisor < 0 ? quotient - 1 : quotient
    }

    /// Days since 1970-01-01 for a civil date (Howard Hinnant's days_from_civil).
    fileprivate static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146097 + dayOfEra - 719468
    }

    /// The civil date of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
    fileprivate static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719468
        let era = floorDivide(z, 146097)
        let dayOfEra = z - era * 146097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// 0 = Sunday ... 6 = Saturday; 1970-01-01 was a Thursday.
    fileprivate static func weekday(ofDays days: Int) -> Int {
        let remainder = (days + 4) % 7
        return remainder < 0 ? remainder + 7 : remainder
    }

    fileprivate static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}
