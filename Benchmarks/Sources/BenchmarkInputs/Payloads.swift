/// Job payloads of typical and large size, shared by every benchmark target.
public enum Payloads {
    /// About 140 bytes: a welcome email's parameters.
    public static let small =
        #"{"to":"ada@example.com","template":"welcome","vars":{"name":"Ada","plan":"pro","trial_days":14},"tags":["signup","email"],"locale":"en-GB"}"#

    /// About 16 KiB: an order of 585 lines.
    public static let large =
        "{\"order\":\"A-1001\",\"lines\":["
        + (0..<585).map { #"{"sku":"SKU-\#(10_000 + $0)","qty":\#($0 % 7 + 1)}"# }.joined(separator: ",") + "]}"
}
