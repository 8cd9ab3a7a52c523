// Starts GraphiQL on /graphql. Served by the node itself, like the scripts
// before it, so the page's Content-Security-Policy can forbid inline and
// remote scripts.
(function () {
  'use strict';
  function createUrl(path, subscription) {
    var url = new URL(path, window.location.origin);
    if (subscription) {
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    }
    return url.toString();
  }
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({
        url: createUrl('/graphql', false),
        subscriptionUrl: createUrl('/graphql', true),
        // GraphiQL sends the headers typed in its editor over HTTP only. For
        // subscriptions to be authenticated too, the WebSocket
        // connection_init payload is computed when the socket opens from
        // those same headers (GraphiQL keeps them in localStorage), so one
        // pasted `Authorization` serves both.
        wsConnectionParams: () => { try {
          const h = JSON.parse(localStorage.getItem('graphiql:headers') || '{}');
          const a = h.Authorization || h.authorization; return a ? { Authorization: a } : {};
        } catch (_) { return {}; } },
      }),
      defaultEditorToolsVisibility: true,
    })
  );
})();
