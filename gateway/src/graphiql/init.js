// Starts GraphiQL against this gateway's /graphql. Sign in by adding
// {"Authorization": "Bearer <token>"} in the Headers tab (`bloody-sweet token` mints one).
(function () {
  "use strict";
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: true,
    })
  );
})();
