// The execution viewer's script (src/cli/serve/viewer.rs): the pages are whole without it.
// It refreshes a running execution's page once a second, and sends Stop and Redrive to the
// Step Functions API that serves the page.
(function () {
  "use strict";
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);
  const arn = params.get("arn");

  function running() {
    const summary = main.querySelector("[data-execution-status]");
    return summary && summary.getAttribute("data-execution-status") === "RUNNING";
  }

  // Keeps open what the reader unfolded, across a refresh.
  function opened() {
    return Array.from(main.querySelectorAll("details")).map((d) => d.open);
  }

  async function refresh() {
    if (!arn || !running()) return;
    try {
      const answer = await fetch("/execution?part=main&arn=" + encodeURIComponent(arn));
      if (answer.ok) {
        const open = opened();
        main.innerHTML = await answer.text();
        main.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
        bind();
      }
    } catch (e) {
      // The server went away for a moment: try again on the next tick.
    }
    if (running()) setTimeout(refresh, 1000);
  }

  async function act(operation) {
    const answer = await fetch("/", {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AWSStepFunctions." + operation,
      },
      body: JSON.stringify({ executionArn: arn }),
    });
    if (!answer.ok) {
      const error = await answer.json().catch(() => ({}));
      alert(operation + ": " + (error.__type || answer.status) + ": " + (error.message || ""));
    }
    location.reload();
  }

  function bind() {
    main.querySelectorAll("button[data-action]").forEach((button) => {
      button.addEventListener("click", () => act(button.getAttribute("data-action")));
    });
  }

  bind();
  if (running()) setTimeout(refresh, 1000);
})();
