// The AI SDK's default OpenAI provider (`openai(model)`, the Responses API) against a gateway.
// Usage: node ai_sdk.mjs BASE_URL SCENARIO; prints one JSON object for the pytest to check.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, streamObject, streamText, tool } from "ai";
import { z } from "zod";

const [baseURL, scenario] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey: "-" });
const model = openai("sim");
const question = "What is the weather in Paris right now?";
const city = z.object({ city: z.string(), days: z.number().int().min(1) });
const weather = tool({ description: "Weather now.", inputSchema: city });

function block(response) {
  return response?.body?.bitgate ?? null;
}

async function text() {
  const plain = await generateText({ model, prompt: "Say hello.", maxOutputTokens: 64 });
  const streamed = streamText({ model, prompt: "Tell me a story." });
  let deltas = "";
  for await (const delta of streamed.textStream) deltas += delta;
  return {
    text: plain.text,
    usage: plain.usage,
    finishReason: plain.finishReason,
    bitgate: block(plain.response),
    streamed: deltas,
    streamedText: await streamed.text,
    streamedUsage: await streamed.usage,
    streamedFinish: await streamed.finishReason,
  };
}

async function object() {
  const plain = await generateObject({ model, schema: city, prompt: question });
  const streamed = streamObject({ model, schema: city, prompt: question });
  let partials = 0;
  for await (const partial of streamed.partialObjectStream) partials += partial ? 1 : 0;
  return {
    object: plain.object,
    bitgate: block(plain.response),
    streamed: await streamed.object,
    partials,
  };
}

async function tools() {
  const request = { model, prompt: question, tools: { get_weather: weather }, toolChoice: "required" };
  const plain = await generateText(request);
  const streamed = streamText(request);
  const calls = (result) => result.map((c) => ({ name: c.toolName, input: c.input }));
  return {
    calls: calls(plain.toolCalls),
    bitgate: block(plain.response),
    streamed: calls(await streamed.toolCalls),
    streamedFinish: await streamed.finishReason,
  };
}

async function chat() {
  // `openai.chat(model)`: the same provider over /v1/chat/completions.
  const chatModel = openai.chat("sim");
  const plain = await generateText({ model: chatModel, prompt: "Say hello." });
  const streamed = streamText({ model: chatModel, prompt: "Tell me a story." });
  return { text: plain.text, streamed: await streamed.text, finishReason: plain.finishReason };
}

async function turns() {
  // A second turn sends the first answer back; stored by default, it would go as a reference.
  const first = await generateText({ model, prompt: "Say hello." });
  const messages = [...first.response.messages, { role: "user", content: "Again, please." }];
  const stateless = { openai: { store: false } };
  const second = await generateText({ model, messages, providerOptions: stateless });
  let refused = null;
  try {
    await generateText({ model, messages });
  } catch (error) {
    refused = { status: error.statusCode ?? null, body: String(error.responseBody ?? error) };
  }
  return { first: first.text, second: second.text, refused };
}

const scenarios = { text, object, tools, chat, turns };
try {
  console.log(JSON.stringify(await scenarios[scenario]()));
} catch (error) {
  console.log(JSON.stringify({ error: String(error), cause: String(error?.cause ?? "") }));
  process.exitCode = 1;
}
