// Classification: one button per class, keys 1-9 for the first nine shown, a filter box when
// there are more than nine classes (Enter takes the first match). The model's guess is
// preselected: Enter accepts it.

const MANY = 9;

export function createClassificationTool({ task, root, submit }) {
  const classes = task.classes;
  root.innerHTML = "";
  let filter = null;
  if (classes.length > MANY) {
    filter = document.createElement("input");
    filter.type = "search";
    filter.className = "filter";
    filter.placeholder = `filter ${classes.length} classes…`;
    filter.setAttribute("aria-label", "filter classes");
    root.append(filter);
  }
  const list = document.createElement("div");
  list.className = "classes";
  root.append(list);
  const buttons = classes.map((name) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.class = name;
    const key = document.createElement("kbd");
    const text = document.createElement("span");
    text.textContent = name;
    const prob = document.createElement("span");
    prob.className = "prob";
    button.append(key, text, prob);
    button.addEventListener("click", () => submit({ class: name }));
    list.append(button);
    return button;
  });
  let selected = null;

  const visible = () => buttons.filter((b) => !b.hidden);

  function renumber() {
    visible().forEach((b, i) => { b.querySelector("kbd").textContent = i < 9 ? String(i + 1) : ""; });
    buttons.filter((b) => b.hidden).forEach((b) => { b.querySelector("kbd").textContent = ""; });
  }

  function select(name) {
    selected = name;
    for (const b of buttons) b.classList.toggle("selected", b.dataset.class === name);
  }

  function applyFilter() {
    const needle = (filter?.value ?? "").trim().toLowerCase();
    for (const b of buttons) b.hidden = needle !== "" && !b.dataset.class.toLowerCase().includes(needle);
    renumber();
    const shown = visible();
    if (needle && shown.length && !shown.some((b) => b.dataset.class === selected)) {
      select(shown[0].dataset.class);
    }
  }
  filter?.addEventListener("input", applyFilter);

  return {
    show(entry, { prefill }) {
      if (filter) filter.value = "";
      applyFilter();
      const probabilities = entry.prediction?.prediction?.probabilities ?? {};
      for (const b of buttons) {
        const p = probabilities[b.dataset.class];
        b.querySelector(".prob").textContent = p === undefined ? "" : `${Math.round(p * 100)}%`;
      }
      select(prefill?.class ?? entry.prediction?.prediction?.class ?? null);
      if (filter) filter.focus();
    },
    value() {
      if (!selected) return { error: "choose a class (click it or press its number)" };
      return { label: { class: selected } };
    },
    onKey(event) {
      if (/^[1-9]$/.test(event.key) && !event.ctrlKey && !event.metaKey && !event.altKey) {
        if (filter && document.activeElement === filter) {
          // Class names may hold digits: a digit that extends the filter to a match is typed.
          const extended = (filter.value + event.key).trim().toLowerCase();
          if (classes.some((name) => name.toLowerCase().includes(extended))) return false;
        }
        const button = visible()[Number(event.key) - 1];
        if (button) submit({ class: button.dataset.class });
        return true;
      }
      return false;
    },
    wantsLetters: () => filter !== null && document.activeElement === filter,
    resize() {},
  };
}
