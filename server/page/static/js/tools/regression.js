// Regression: a number field per target, prefilled with the model's guess, showing the
// target's known range; Enter submits.

function round(value) {
  return Math.round(value * 100) / 100;
}

export function createRegressionTool({ task, root, submit, setStatus }) {
  const ranges = task.ranges ?? {};
  root.innerHTML = "";
  const form = document.createElement("div");
  form.className = "targets";
  root.append(form);
  const inputs = task.targets.map((name) => {
    const label = document.createElement("label");
    const title = document.createElement("span");
    title.textContent = name;
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.name = name;
    input.dataset.target = name;
    label.append(title, input);
    const range = ranges[name];
    if (range) {
      input.min = String(range[0]);
      input.max = String(range[1]);
      const hint = document.createElement("span");
      hint.className = "range";
      hint.textContent = `range ${range[0]} – ${range[1]}`;
      label.append(hint);
    }
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        event.stopPropagation();
        const result = tool.value();
        if (result.error) setStatus(result.error, true);
        else submit(result.label);
      }
    });
    form.append(label);
    return input;
  });

  const tool = {
    show(entry, { prefill }) {
      const guess = entry.prediction?.prediction?.values ?? {};
      for (const input of inputs) {
        const name = input.dataset.target;
        let value = prefill?.values?.[name] ?? guess[name];
        const range = ranges[name];
        if (value !== undefined && range) value = Math.min(Math.max(value, range[0]), range[1]);
        input.value = value === undefined ? "" : String(round(value));
      }
      inputs[0].focus();
      inputs[0].select();
    },
    value() {
      const values = {};
      for (const input of inputs) {
        const name = input.dataset.target;
        const value = input.value.trim() === "" ? NaN : Number(input.value);
        if (!Number.isFinite(value)) return { error: `enter a number for ${name}` };
        const range = ranges[name];
        if (range && (value < range[0] || value > range[1])) {
          return { error: `${name} must lie in ${range[0]} – ${range[1]}` };
        }
        values[name] = value;
      }
      return { label: { values } };
    },
    onKey: () => false,
    wantsLetters: () => inputs.includes(document.activeElement),
    resize() {},
  };
  return tool;
}
