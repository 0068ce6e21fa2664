// /docs: the server's endpoints, listed from its OpenAPI schema, without any CDN.
import { api, el } from "./util.js";

const main = document.getElementById("docs");

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map(schemaName).join(" | ");
  if (schema.type === "array") return `${schemaName(schema.items)}[]`;
  return schema.type ?? "";
}

function parameters(operation) {
  const list = operation.parameters ?? [];
  if (!list.length) return null;
  return el("ul", { class: "params" }, list.map((p) => el("li", {},
    el("code", {}, p.name), ` (${p.in}${p.required ? ", required" : ""}) `,
    schemaName(p.schema), p.description ? ` — ${p.description}` : "")));
}

function body(operation) {
  const content = operation.requestBody?.content;
  if (!content) return null;
  return el("p", {}, "body: ", Object.entries(content).map(([type, value]) =>
    `${type} ${schemaName(value.schema)}`).join(", "));
}

function answer(operation) {
  const ok = operation.responses?.["200"]?.content;
  if (!ok) return null;
  return el("p", {}, "answers: ", Object.entries(ok).map(([type, value]) =>
    `${type} ${schemaName(value.schema)}`).join(", "));
}

try {
  const spec = await api("/openapi.json");
  main.append(el("p", {}, spec.info?.description ?? ""));
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const usable = method === "get" && !path.includes("{");
      main.append(el("section", { class: "set endpoint" },
        el("h2", {}, el("code", {}, `${method.toUpperCase()} `),
          usable ? el("a", { href: path }, path) : el("code", {}, path)),
        operation.summary ? el("p", {}, operation.summary) : null,
        operation.description ? el("p", { class: "note" }, operation.description) : null,
        parameters(operation), body(operation), answer(operation)));
    }
  }
} catch (error) {
  main.append(el("p", { class: "error" }, `Could not read /openapi.json: ${error.message}`));
}
