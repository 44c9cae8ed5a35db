// Run a transformers.js folder on given inputs in Node: prints the token vectors and the tokenizer's ids.
// node transformers_js_run.mjs MODEL_DIR INPUTS_JSON DTYPE   (inputs: {texts, input_ids, attention_mask[, token_type_ids]})
import { AutoModel, AutoTokenizer, Tensor, env } from "@huggingface/transformers";
import fs from "node:fs";

const [dir, inputsPath, dtype] = process.argv.slice(2);
env.allowRemoteModels = false; // offline: the folder only
env.localModelPath = "/";
const tokenizer = await AutoTokenizer.from_pretrained(dir);
const model = await AutoModel.from_pretrained(dir, { dtype, device: "cpu" });
const request = JSON.parse(fs.readFileSync(inputsPath, "utf8"));
const shape = [request.input_ids.length, request.input_ids[0].length];
const feeds = {};
for (const name of ["input_ids", "attention_mask", "token_type_ids"]) {
  if (request[name]) feeds[name] = new Tensor("int64", BigInt64Array.from(request[name].flat().map(BigInt)), shape);
}
const output = await model(feeds);
const vectors = output.token_embeddings ?? output.last_hidden_state;
const ids = request.texts.map((text) => Array.from(tokenizer.encode(text)));
console.log(JSON.stringify({ dims: vectors.dims, data: Array.from(vectors.data), ids }));
