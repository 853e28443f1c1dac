// Live progress bars: each `.live-progress` box (the task page's #task among them) polls its
// task from the API (session cookie) until the task ends, then shows the outcome by itself:
//   data-next="URL"      go there when the task succeeds (ingest → the dataset, a build → the release);
//   data-on-done="reload" reload the page, which now shows the result in words (a release's
//                        report, a verification's verdict: the server puts results into words).
// A page opened on a task that had already ended stays where it is, unless it was opened
// from the form that started the task (data-follow).
(function () {
  const FINISHED = ["succeeded", "failed"];

  function watch(box) {
    const part = (name) => box.querySelector('[data-part="' + name + '"]');
    const initial = box.dataset.status;
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
      const percent = Math.round(task.percent);
      box.querySelector("progress").value = percent;
      part("percent").textContent = percent;
      part("stage").textContent = task.stage;
      part("status").textContent = task.status_display;
      part("status").className = "status " + task.status;
      box.dataset.status = task.status;
      const error = part("error");
      if (task.error && error) { error.hidden = false; error.textContent = task.error; }
      if (!FINISHED.includes(task.status)) { setTimeout(poll, 1000); return; }
      if (FINISHED.includes(initial) && !box.dataset.follow) return;
      if (box.dataset.next && task.status === "succeeded") window.location.assign(box.dataset.next);
      else if (box.dataset.onDone === "reload") window.location.reload();
    }
    poll();
  }

  document.querySelectorAll(".live-progress").forEach(watch);
})();
