'use strict';

// Start-then-stream chat backend (contracts.md §3, seed 002) written with Express instead of NestJS.
//
//   POST /chat/start    {"prompt", "modelId", "userId", "chatId"?}  -> 200 {sessionId, chatId}
//   GET  /chat/stream?sessionId=   (a browser's EventSource)        -> text/event-stream, X-Cache: HIT|MISS
//        data: {"type":"token","content":TEXT} ... then data: {"type":"done"}  (or {"type":"error","message"})
//   GET  /chat/history?chatId=                                       -> 200 [{role, content, createdAt}, ...]
//
// A stream session lives SESSION_TTL_MS (10 minutes) and is streamed once. Answers are cached for
// CACHE_TTL_MS (1 hour) per model and conversation so far (in memory, instead of the seed's Redis).
// Each user has a plan (USER_PLANS, default plan DEFAULT_PLAN) and each plan a list of models (PLANS).
// Storage is in memory (instead of the seed's Prisma/PostgreSQL).
//
// Environment: PORT (0 = any free port), HOST, OPENAI_BASE_URL, OPENAI_API_KEY, UPSTREAM_TIMEOUT_MS
// (default 60000), SESSION_TTL_MS, CACHE_TTL_MS, PLANS and USER_PLANS (JSON), DEFAULT_PLAN, CORS_ORIGINS
// (comma-separated).

const crypto = require('node:crypto');
const cors = require('cors');
const express = require('express');
const OpenAI = require('openai');

function intFromEnv(name, fallback) {
  const value = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(value) ? value : fallback;
}

function jsonFromEnv(name, fallback) {
  if (!process.env[name]) return fallback;
  return JSON.parse(process.env[name]);
}

const DEFAULT_PLANS = {
  free: ['mock-model', 'gpt-4o-mini', 'gpt-3.5-turbo'],
  pro: ['mock-model', 'gpt-4o-mini', 'gpt-3.5-turbo', 'gpt-4o', 'gpt-4.1', 'grok-2'],
};

const config = {
  port: intFromEnv('PORT', 3001),
  host: process.env.HOST || '127.0.0.1',
  corsOrigins: (process.env.CORS_ORIGINS || 'http://localhost:3000').split(',').map((o) => o.trim()),
  sessionTtlMs: intFromEnv('SESSION_TTL_MS', 10 * 60 * 1000),
  cacheTtlMs: intFromEnv('CACHE_TTL_MS', 60 * 60 * 1000),
  plans: jsonFromEnv('PLANS', DEFAULT_PLANS),
  userPlans: jsonFromEnv('USER_PLANS', {}),
  defaultPlan: process.env.DEFAULT_PLAN || 'free',
  ai: {
    baseURL: process.env.OPENAI_BASE_URL || 'https://api.openai.com/v1',
    apiKey: process.env.OPENAI_API_KEY || 'sk-local-development',
    timeoutMs: intFromEnv('UPSTREAM_TIMEOUT_MS', 60000),
  },
};

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------------------------------------
// Storage (in memory; the seed's Chat, Message and ChatSession models)

class ChatStore {
  constructor() {
    this.chats = new Map(); // id -> {id, userId, title, createdAt}
    this.messages = new Map(); // chatId -> [{id, role, content, createdAt}]
    this.sessions = new Map(); // id -> {id, chatId, userId, modelId, createdAt, expiresAt, status}
  }

  createChat(userId, title) {
    const chat = { id: crypto.randomUUID(), userId, title, createdAt: new Date().toISOString() };
    this.chats.set(chat.id, chat);
    this.messages.set(chat.id, []);
    return chat;
  }

  findChat(id) {
    return this.chats.get(id);
  }

  saveMessage(chatId, role, content) {
    const message = { id: crypto.randomUUID(), role, content, createdAt: new Date().toISOString() };
    this.messages.get(chatId).push(message);
    return message;
  }

  history(chatId) {
    return [...(this.messages.get(chatId) || [])];
  }

  createSession({ chatId, userId, modelId, ttlMs }) {
    const now = Date.now();
    const session = {
      id: crypto.randomUUID(),
      chatId,
      userId,
      modelId,
      createdAt: now,
      expiresAt: now + ttlMs,
      status: 'pending',
    };
    this.sessions.set(session.id, session);
    return session;
  }

  findSession(id) {
    return this.sessions.get(id);
  }
}

// A Map with a time to live per entry (the seed's Redis cache with a 1 hour TTL).
class TtlCache {
  constructor(ttlMs) {
    this.ttlMs = ttlMs;
    this.entries = new Map();
  }

  get(key) {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value) {
    this.entries.set(key, { value, expiresAt: Date.now() + this.ttlMs });
  }
}

// ---------------------------------------------------------------------------------------------
// Model access (the seed's subscription-based plans)

class PlanService {
  constructor({ plans, userPlans, defaultPlan }) {
    this.plans = plans;
    this.userPlans = userPlans;
    this.defaultPlan = defaultPlan;
  }

  planOf(userId) {
    return this.userPlans[userId] || this.defaultPlan;
  }

  canUse(userId, modelId) {
    const models = this.plans[this.planOf(userId)] || [];
    return models.includes(modelId);
  }
}

// ---------------------------------------------------------------------------------------------
// LLM provider (OpenAI-compatible chat completions, streamed)

class AiProvider {
  constructor({ baseURL, apiKey, timeoutMs }) {
    this.client = new OpenAI({ baseURL, apiKey, timeout: timeoutMs });
  }

  async *streamChat(model, messages, signal) {
    const stream = await this.client.chat.completions.create({ model, messages, stream: true }, { signal });
    for await (const chunk of stream) {
      const text = chunk.choices?.[0]?.delta?.content;
      if (text) yield text;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Chat service

function cacheKey(modelId, messages) {
  const hash = crypto.createHash('sha256').update(JSON.stringify(messages)).digest('hex');
  return `chat:${modelId}:${hash}`;
}

class ChatService {
  constructor({ store, cache, plans, ai, sessionTtlMs }) {
    this.store = store;
    this.cache = cache;
    this.plans = plans;
    this.ai = ai;
    this.sessionTtlMs = sessionTtlMs;
  }

  start({ prompt, modelId, userId, chatId }) {
    if (!this.plans.canUse(userId, modelId)) {
      throw new HttpError(403, `Your plan does not include the model ${modelId}`);
    }
    let chat;
    if (chatId) {
      chat = this.store.findChat(chatId);
      if (!chat || chat.userId !== userId) throw new HttpError(404, 'Chat not found');
    } else {
      chat = this.store.createChat(userId, prompt.slice(0, 60));
    }
    this.store.saveMessage(chat.id, 'user', prompt);
    const session = this.store.createSession({ chatId: chat.id, userId, modelId, ttlMs: this.sessionTtlMs });
    return { sessionId: session.id, chatId: chat.id };
  }

  // The session, if it can be streamed now; it is then used up.
  claimSession(sessionId) {
    const session = this.store.findSession(sessionId);
    if (!session) throw new HttpError(404, 'Stream session not found');
    if (session.expiresAt <= Date.now()) throw new HttpError(410, 'Stream session has expired');
    if (session.status !== 'pending') throw new HttpError(410, 'Stream session was already used');
    session.status = 'streaming';
    return session;
  }

  conversation(session) {
    return this.store.history(session.chatId).map((m) => ({ role: m.role, content: m.content }));
  }

  cached(session, messages) {
    return this.cache.get(cacheKey(session.modelId, messages));
  }

  async *generate(session, messages, signal) {
    for await (const chunk of this.ai.streamChat(session.modelId, messages, signal)) {
      yield chunk;
    }
  }

  finish(session, messages, text, { cache }) {
    this.store.saveMessage(session.chatId, 'assistant', text);
    if (cache) this.cache.set(cacheKey(session.modelId, messages), text);
    session.status = 'done';
  }

  history(chatId) {
    if (!this.store.findChat(chatId)) throw new HttpError(404, 'Chat not found');
    return this.store.history(chatId).map(({ role, content, createdAt }) => ({ role, content, createdAt }));
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

function requireString(value, field) {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new HttpError(400, `${field} is required and must be a non-empty string`);
  }
  return value;
}

function parseStartBody(body) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'Request body must be a JSON object');
  }
  const prompt = requireString(body.prompt, 'prompt');
  const modelId = requireString(body.modelId, 'modelId');
  const userId = requireString(body.userId, 'userId');
  let chatId;
  if (body.chatId !== undefined && body.chatId !== null && body.chatId !== '') {
    chatId = requireString(body.chatId, 'chatId');
  }
  return { prompt, modelId, userId, chatId };
}

// ---------------------------------------------------------------------------------------------
// App

function sse(res, payload) {
  res.write(`data: ${JSON.stringify(payload)}\n\n`);
}

function createApp({ chat, corsOrigins }) {
  const app = express();
  app.disable('x-powered-by');
  app.use(cors({ origin: corsOrigins, credentials: true }));
  app.use(express.json());

  app.get('/health', (req, res) => {
    res.json({ status: 'ok' });
  });

  app.post('/chat/start', (req, res) => {
    const input = parseStartBody(req.body);
    res.status(200).json(chat.start(input));
  });

  app.get('/chat/stream', async (req, res) => {
    const sessionId = requireString(req.query.sessionId, 'sessionId');
    const session = chat.claimSession(sessionId);
    const messages = chat.conversation(session);
    const cached = chat.cached(session, messages);

    res.status(200);
    res.set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
      'X-Cache': cached !== undefined ? 'HIT' : 'MISS',
    });
    res.flushHeaders();

    if (cached !== undefined) {
      sse(res, { type: 'token', content: cached });
      chat.finish(session, messages, cached, { cache: false });
      sse(res, { type: 'done' });
      res.end();
      return;
    }

    // Stop the LLM request when the client goes away (the stop button closes the EventSource).
    const upstream = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) upstream.abort();
    });

    let text = '';
    try {
      for await (const chunk of chat.generate(session, messages, upstream.signal)) {
        text += chunk;
        sse(res, { type: 'token', content: chunk });
      }
      chat.finish(session, messages, text, { cache: true });
      sse(res, { type: 'done' });
    } catch (error) {
      if (upstream.signal.aborted) {
        // Stopped by the client: keep what was streamed so far.
        if (text) chat.finish(session, messages, text, { cache: false });
        return;
      }
      console.error(`stream for session ${session.id} failed:`, error?.message || error);
      session.status = 'failed';
      sse(res, { type: 'error', message: 'The AI model failed to answer. Please try again.' });
    }
    res.end();
  });

  app.get('/chat/history', (req, res) => {
    const chatId = requireString(req.query.chatId, 'chatId');
    res.json(chat.history(chatId));
  });

  app.use((req, res) => {
    res.status(404).json({ statusCode: 404, message: `Cannot ${req.method} ${req.path}` });
  });

  // Error handler: JSON bodies that name the problem, never internals.
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    let status = 500;
    let message = 'Internal server error';
    if (err instanceof HttpError) {
      status = err.status;
      message = err.message;
    } else if (err.type === 'entity.parse.failed') {
      status = 400;
      message = 'Request body is not valid JSON';
    } else if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
      status = err.status;
      message = err.expose ? err.message : 'Bad request';
    } else {
      console.error(err);
    }
    if (res.headersSent) {
      sse(res, { type: 'error', message });
      res.end();
      return;
    }
    res.status(status).json({ statusCode: status, message });
  });

  return app;
}

// ---------------------------------------------------------------------------------------------

const chat = new ChatService({
  store: new ChatStore(),
  cache: new TtlCache(config.cacheTtlMs),
  plans: new PlanService(config),
  ai: new AiProvider(config.ai),
  sessionTtlMs: config.sessionTtlMs,
});
const app = createApp({ chat, corsOrigins: config.corsOrigins });

const server = app.listen(config.port, config.host, () => {
  const { port } = server.address();
  console.log(`start_stream_express listening on http://${config.host}:${port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
