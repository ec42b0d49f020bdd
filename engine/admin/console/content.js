// Showing message content: HL7 v2 as segments with each field's position on
// hover, a field-aware diff of two HL7 messages, DICOM JSON as a table,
// JSON and XML indented, YAML and Lua with simple highlighting.
"use strict";
(() => {
  const { h } = J;

  // HL7 v2 → [{name, fields: [field text, ...]}] where fields[i] is field i
  // (MSH-1 is the field separator, MSH-2 the encoding characters).
  const parseHl7 = (text) => {
    const segs = [];
    const fs = text.startsWith("MSH") ? text[3] : "|";
    const enc = text.startsWith("MSH") ? text.slice(4, 8) : "^~\\&";
    for (const line of text.split(/\r\n|\r|\n/)) {
      if (!line.trim()) continue;
      const parts = line.split(fs);
      const name = parts[0];
      const fields = [name];
      if (name === "MSH") { fields.push(fs); fields.push(...parts.slice(1)); }
      else fields.push(...parts.slice(1));
      segs.push({ name, fields });
    }
    return { segs, comp: enc[0] || "^", rep: enc[1] || "~" };
  };
  J.looksHl7 = (text) => /^(MSH|FHS|BHS)./.test(text || "");

  // Segments with occurrence numbers: PID, OBX[2], ...
  const segKeys = (segs) => {
    const seen = {};
    return segs.map((s) => { seen[s.name] = (seen[s.name] || 0) + 1; return seen[s.name] > 1 ? `${s.name}[${seen[s.name]}]` : s.name; });
  };

  J.hl7View = (text) => {
    const { segs, comp, rep } = parseHl7(text);
    const fs = segs.length && segs[0].name === "MSH" ? segs[0].fields[1] : "|";
    return h("pre", { class: "hl7" }, segs.map((s) => {
      const out = [h("span", { class: "seg-name" }, s.name)];
      const first = s.name === "MSH" ? 2 : 1;
      if (s.name === "MSH") out.push(h("span", { class: "fld", title: "MSH-1" }, fs));
      for (let i = first; i < s.fields.length; i++) {
        if (i > first || s.name !== "MSH") out.push(h("span", { class: "sep" }, fs));
        const pos = `${s.name}-${i}`;
        const value = s.fields[i];
        if (s.name === "MSH" && i === 2) { out.push(h("span", { class: "fld", title: pos }, value)); continue; }
        const reps = value.split(rep);
        const fld = h("span", { class: "fld", title: pos });
        reps.forEach((r, ri) => {
          if (ri) fld.append(h("span", { class: "sep" }, rep));
          const comps = r.split(comp);
          comps.forEach((c, ci) => {
            if (ci) fld.append(h("span", { class: "sep" }, comp));
            const cpos = `${pos}${reps.length > 1 ? `(${ri + 1})` : ""}.${ci + 1}`;
            fld.append(h("span", { class: "cmp", title: cpos, "data-pos": cpos }, c));
          });
        });
        out.push(fld);
      }
      return h("span", { class: "seg" }, out);
    }));
  };

  // position → value of every non-empty component ("PID-5.1" → "SMITH").
  const flatten = (text) => {
    const { segs, comp, rep } = parseHl7(text);
    const keys = segKeys(segs);
    const map = new Map();
    segs.forEach((s, si) => {
      for (let i = 1; i < s.fields.length; i++) {
        if (s.name === "MSH" && i <= 2) { if (s.fields[i]) map.set(`${keys[si]}-${i}`, s.fields[i]); continue; }
        const reps = s.fields[i].split(rep);
        reps.forEach((r, ri) => r.split(comp).forEach((c, ci) => {
          if (c !== "") map.set(`${keys[si]}-${i}${ri ? `(${ri + 1})` : ""}.${ci + 1}`, c);
        }));
      }
    });
    return map;
  };

  // ["PID-5.1: SMITH → SMYTHE", ...]: what changed from `a` to `b`, field by field.
  J.hl7Diff = (a, b) => {
    const fa = flatten(a), fb = flatten(b);
    const lines = [];
    for (const [k, v] of fa) {
      if (!fb.has(k)) lines.push(`${k}: ${v} → (empty)`);
      else if (fb.get(k) !== v) lines.push(`${k}: ${v} → ${fb.get(k)}`);
    }
    for (const [k, v] of fb) if (!fa.has(k)) lines.push(`${k}: (empty) → ${v}`);
    return lines;
  };

  // A few common DICOM keywords by tag (the rest show their tag only).
  const KEYWORDS = {
    "00080005": "SpecificCharacterSet", "00080016": "SOPClassUID", "00080018": "SOPInstanceUID", "00080020": "StudyDate",
    "00080030": "StudyTime", "00080050": "AccessionNumber", "00080060": "Modality", "00080090": "ReferringPhysicianName",
    "00081030": "StudyDescription", "0008103E": "SeriesDescription", "00100010": "PatientName", "00100020": "PatientID",
    "00100030": "PatientBirthDate", "00100040": "PatientSex", "0020000D": "StudyInstanceUID", "0020000E": "SeriesInstanceUID",
    "00200010": "StudyID", "00200011": "SeriesNumber", "00200013": "InstanceNumber", "00280010": "Rows", "00280011": "Columns",
    "00321060": "RequestedProcedureDescription", "00400100": "ScheduledProcedureStepSequence", "00400001": "ScheduledStationAETitle",
    "00400002": "ScheduledProcedureStepStartDate", "00400003": "ScheduledProcedureStepStartTime", "00400009": "ScheduledProcedureStepID",
    "00401001": "RequestedProcedureID", "00400252": "PerformedProcedureStepStatus", "00400253": "PerformedProcedureStepID",
  };
  const dicomValue = (e) => {
    if (!e) return "";
    if (e.Value) return e.Value.map((v) => (v && typeof v === "object" ? (v.Alphabetic !== undefined ? v.Alphabetic : JSON.stringify(v)) : String(v))).join("\\");
    if (e.InlineBinary) return `(binary, ${e.InlineBinary.length} base64 characters)`;
    if (e.BulkDataURI) return `(bulk data ${e.BulkDataURI})`;
    return "";
  };
  const dicomRows = (obj, depth) => {
    const rows = [];
    for (const tag of Object.keys(obj).sort()) {
      const e = obj[tag];
      const t = `(${tag.slice(0, 4)},${tag.slice(4)})`;
      const kw = KEYWORDS[tag.toUpperCase()] || "";
      if (e && e.vr === "SQ") {
        rows.push(h("tr", {}, h("td", {}, "  ".repeat(depth) + t), h("td", {}, kw), h("td", {}, "SQ"), h("td", {}, `${(e.Value || []).length} item(s)`)));
        (e.Value || []).forEach((item) => rows.push(...dicomRows(item || {}, depth + 1)));
      } else {
        rows.push(h("tr", {}, h("td", {}, "  ".repeat(depth) + t), h("td", {}, kw), h("td", {}, e ? e.vr : ""), h("td", {}, dicomValue(e))));
      }
    }
    return rows;
  };
  J.dicomTable = (obj) => h("table", { class: "dicom" },
    h("tr", {}, h("th", {}, "tag"), h("th", {}, "keyword"), h("th", {}, "VR"), h("th", {}, "value")), dicomRows(obj, 0));

  const prettyXml = (text) => {
    let depth = 0;
    return text.replace(/>\s*</g, ">\n<").split("\n").map((line) => {
      if (/^<\/[^>]+>$/.test(line)) depth = Math.max(depth - 1, 0);
      const out = "  ".repeat(depth) + line;
      if (/^<[^!?/][^>]*>$/.test(line) && !/\/>$/.test(line)) depth++;
      return out;
    }).join("\n");
  };

  // Any content, shown as what it looks like.
  J.contentView = (text) => {
    if (!text) return h("p", { class: "muted" }, "(empty)");
    if (J.looksHl7(text)) return J.hl7View(text);
    const t = text.trim();
    if (t.startsWith("{") || t.startsWith("[")) {
      try {
        const obj = JSON.parse(t);
        const keys = obj && !Array.isArray(obj) ? Object.keys(obj) : [];
        if (keys.length && keys.every((k) => /^[0-9A-Fa-f]{8}$/.test(k))) return J.dicomTable(obj);
        return h("pre", {}, JSON.stringify(obj, null, 2));
      } catch (e) { /* not JSON: as text */ }
    }
    if (t.startsWith("<")) return h("pre", {}, prettyXml(t));
    return h("pre", {}, text);
  };

  // YAML or Lua text with keywords, strings, comments and numbers marked.
  const LUA_WORDS = /^(and|break|do|else|elseif|end|false|for|function|goto|if|in|local|nil|not|or|repeat|return|then|true|until|while)$/;
  J.codeView = (text, lang) => {
    const pre = h("pre", { class: "code" });
    const re = lang === "lua"
      ? /(--[^\n]*)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(\b\d+(?:\.\d+)?\b)|([A-Za-z_]\w*)/g
      : /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"|'[^'\n]*')|(\b\d+(?:\.\d+)?\b)|(^[ \t-]*[A-Za-z_][\w.-]*(?=:))/gm;
    let last = 0;
    for (const m of (text || "").matchAll(re)) {
      if (m[4] && lang === "lua" && !LUA_WORDS.test(m[4])) continue;
      pre.append(text.slice(last, m.index));
      const cls = m[1] ? "c" : m[2] ? "s" : m[3] ? "n" : "k";
      pre.append(h("span", { class: cls }, m[0]));
      last = m.index + m[0].length;
    }
    pre.append((text || "").slice(last));
    return pre;
  };

  // An SVG sparkline of `values`.
  J.sparkline = (values, title) => {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 240 32");
    svg.setAttribute("preserveAspectRatio", "none");
    const t = document.createElementNS(ns, "title");
    t.textContent = title;
    svg.append(t);
    const max = Math.max(1, ...values);
    const step = values.length > 1 ? 240 / (values.length - 1) : 240;
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(1)},${(31 - (v / max) * 30).toFixed(1)}`).join(" "));
    svg.append(line);
    return svg;
  };
})();
