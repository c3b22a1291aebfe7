// openai-node against a gateway: chat completions and Responses, streamed and not, models.
// Usage: node openai_node.mjs BASE_URL; prints one JSON object for the pytest to check.
import OpenAI from "openai";

const [baseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "-", maxRetries: 0 });
const messages = [{ role: "user", content: "Why is the sky blue?" }];

async function main() {
  const chat = await client.chat.completions.create({ model: "sim", messages });
  let chatStreamed = "";
  for await (const chunk of await client.chat.completions.create({ model: "sim", messages, stream: true })) {
    chatStreamed += chunk.choices[0]?.delta?.content ?? "";
  }
  const response = await client.responses.create({ model: "sim", input: "Why is the sky blue?" });
  const stream = client.responses.stream({ model: "sim", input: "Why is the sky blue?" });
  let deltas = "";
  stream.on("response.output_text.delta", (event) => { deltas += event.delta; });
  const final = await stream.finalResponse();
  const model = await client.models.retrieve("sim");
  let missing = null;
  try {
    await client.embeddings.create({ model: "sim", input: "hi" });
  } catch (error) {
    missing = { status: error.status, message: error.message };
  }
  return {
    chat: chat.choices[0].message.content,
    chatBitgate: chat.bitgate ?? null,
    chatStreamed,
    response: response.output_text,
    responseBitgate: response.bitgate ?? null,
    streamed: deltas,
    streamedFinal: final.output
      .filter((item) => item.type === "message")
      .flatMap((item) => item.content.map((part) => part.text ?? ""))
      .join(""),
    streamedStatus: final.status,
    model: model.id,
    embeddings: missing,
  };
}

try {
  console.log(JSON.stringify(await main()));
} catch (error) {
  console.log(JSON.stringify({ error: String(error) }));
  process.exitCode = 1;
}
