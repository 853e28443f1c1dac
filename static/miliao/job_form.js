// The job form shows the fields of the chosen kind only (fieldsets marked data-kinds), and
// disables the others so that they are not sent; without script every field shows and the
// server reads only the chosen kind's.
(function () {
  const form = document.getElementById("job-form");
  if (!form) return;
  function show() {
    const chosen = form.querySelector("input[name=kind]:checked");
    const kind = chosen ? chosen.value : "";
    form.querySelectorAll("fieldset[data-kinds]").forEach(function (set) {
      const on = set.dataset.kinds.split(" ").includes(kind);
      set.hidden = !on;
      set.disabled = !on;
    });
  }
  form.querySelectorAll("input[name=kind]").forEach(function (radio) { radio.addEventListener("change", show); });
  show();
})();
