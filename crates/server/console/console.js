// Filters the rows of a table marked data-filterable as the user types into its filter box.
document.querySelectorAll("input[data-filter]").forEach((box) => {
  const table = document.getElementById(box.dataset.filter);
  box.addEventListener("input", () => {
    const q = box.value.toLowerCase();
    table.querySelectorAll("tbody tr").forEach((row) => {
      row.hidden = q !== "" && !row.textContent.toLowerCase().includes(q);
    });
  });
});

// Asks before an action that changes an endpoint (stop, start, roll back).
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});
