// arspay: starts Swagger UI on /docs (a file, not an inline script: the page's CSP
// allows scripts from this site only). The document is always this engine's own
// /openapi.json: no URL box, no spec from the query string, no outside validator.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: false,
    queryConfigEnabled: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
