// Starts Swagger UI (vendored, loaded as a classic script before this module) on the
// server's own /openapi.json. No inline script: this module is allowed by 'self'.
const root = document.getElementById("swagger-ui");
const SwaggerUIBundle = window.SwaggerUIBundle;

if (typeof SwaggerUIBundle !== "function") {
  root.textContent = "Swagger UI did not load.";
} else {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    domNode: root,
    deepLinking: true,
    docExpansion: "list",
    persistAuthorization: false,
    tryItOutEnabled: false,
    validatorUrl: null,
    syntaxHighlight: { activated: false },
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}
