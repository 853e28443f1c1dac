// Polls a task's progress from the API (session cookie) until it finishes.
(function () {
  const box = document.getElementById("task");
  if (!box) return;
  const el = (id) => document.getElementById(id);
  async function poll() {
    let task;
    try {
      const response = await fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      task = await response.json();
    } catch (err) {
      setTimeout(poll, 3000);
      return;
    }
    el("task-bar").value = Math.round(task.percent);
    el("task-percent").textContent = Math.round(task.percent);
    el("task-stage").textContent = task.stage;
    el("task-status").textContent = task.status_display;
    el("task-status").className = "status " + task.status;
    if (task.error) { el("task-error").hidden = false; el("task-error").textContent = task.error; }
    const done = task.status === "succeeded" || task.status === "failed";
    // The result is put into words on the server: a task that ends while watched reloads.
    if (done && el("task-result").dataset.finished !== "true") window.location.reload();
    else if (!done) setTimeout(poll, 1000);
  }
  poll();
})();
