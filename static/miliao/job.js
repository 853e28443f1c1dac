// A job's page: polls the job from the API (session cookie), moves its progress bar and
// redraws its training curves (charts.js) as rounds come in, until it has finished.
(function () {
  const box = document.getElementById("job");
  if (!box) return;
  const el = (id) => document.getElementById(id);
  const finished = ["review", "released", "rejected", "failed"];

  function draw(history) {
    if (window.MiliaoCharts) window.MiliaoCharts.fromHistory(history);
    const curve = el("job-curve");
    if (curve) curve.dataset.points = history.length;
  }

  async function poll() {
    let job;
    try {
      const response = await fetch(box.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      job = await response.json();
    } catch (err) {
      setTimeout(poll, 3000);
      return;
    }
    if (job.progress) { el("job-bar").value = Math.round(job.progress.percent); el("job-stage").textContent = job.progress.stage; }
    el("job-status").className = "status " + job.status;
    el("job-status").dataset.status = job.status;
    if (job.status_reason) { el("job-reason").hidden = false; el("job-reason").textContent = job.status_reason; }
    if (job.epsilon_spent) el("job-epsilon").textContent = job.epsilon_spent;
    if (!finished.includes(initial)) draw(job.history || []);
    if (!finished.includes(job.status)) setTimeout(poll, 1000);
    else if (!finished.includes(initial)) window.location.reload();  // show the checks, metrics and forms
  }
  const initial = el("job-status").className.replace("status ", "");
  poll();
})();
