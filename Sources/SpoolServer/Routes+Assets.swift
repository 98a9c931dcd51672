import Hummingbird

/// The dashboard's files and the OpenAPI document, all compiled into the
/// binary (Resources/ via SwiftPM's embedInCode; Generated/OpenAPIDocument.swift).
extension Routes {
    func dashboard(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.asset(PackageResources.dashboard_html, type: "text/html; charset=utf-8")
    }

    func dashboardScript(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.asset(PackageResources.dashboard_js, type: "text/javascript; charset=utf-8")
    }

    func dashboardStyle(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.asset(PackageResources.dashboard_css, type: "text/css; charset=utf-8")
    }

    func openAPI(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        Self.asset(Array(OpenAPIDocument.json.utf8), type: "application/json; charset=utf-8")
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: type, .cacheControl: "no-cache", .contentSecurityPolicy: Self.contentSecurityPolicy,
                HTTPFields.Element.Name("X-Content-Type-Options")!: "nosniff",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Everything the dashboard loads comes from this server.
    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
}
