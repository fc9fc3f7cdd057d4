'use strict';

// Conversations chat backend (contracts.md §2, seed 001) written with Express instead of NestJS.
//
//   POST /chat/conversation  {"title"}                      -> 201 {id, title, userId, createdAt, updatedAt}
//   POST /chat/stream        {"conversationId", "message"}  -> text/event-stream:
//        data: {"content": TEXT}  per LLM chunk, then  data: [DONE]   (or  data: {"error": MESSAGE}  and the end)
//
// Every call needs `Authorization: Bearer <HS256 JWT>` whose `sub` is the user id. Storage is in memory.
//
// Environment: PORT (0 = any free port), OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL, JWT_SECRET,
// RATE_LIMIT_MAX (default 10) and RATE_LIMIT_WINDOW_MS (default 60000) for the per-user stream limit,
// UPSTREAM_TIMEOUT_MS (default 60000) for the LLM request.

const crypto = require('node:crypto');
const express = require('express');
const jwt = require('jsonwebtoken');
const OpenAI = require('openai');

const config = {
  port: Number.parseInt(process.env.PORT ?? '3000', 10),
  host: process.env.HOST || '127.0.0.1',
  jwtSecret: process.env.JWT_SECRET || 'dev-secret',
  ai: {
    baseURL: process.env.OPENAI_BASE_URL || 'https://api.openai.com/v1',
    apiKey: process.env.OPENAI_API_KEY || 'sk-local-development',
    model: process.env.OPENAI_MODEL || 'gpt-4o-mini',
    timeoutMs: Number.parseInt(process.env.UPSTREAM_TIMEOUT_MS ?? '60000', 10),
  },
  rateLimit: {
    max: Number.parseInt(process.env.RATE_LIMIT_MAX ?? '10', 10),
    windowMs: Number.parseInt(process.env.RATE_LIMIT_WINDOW_MS ?? '60000', 10),
  },
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------------------------------------
// Storage (in memory; the seed's `conversations` and `messages` tables)

class ChatStore {
  constructor() {
    this.conversations = new Map(); // id -> {id, title, userId, createdAt, updatedAt}
    this.messages = new Map(); // conversationId -> [{id, role, content, conversationId, createdAt}]
  }

  createConversation(userId, title) {
    const now = new Date().toISOString();
    const conversation = { id: crypto.randomUUID(), title, userId, createdAt: now, updatedAt: now };
    this.conversations.set(conversation.id, conversation);
    this.messages.set(conversation.id, []);
    return conversation;
  }

  findConversation(id) {
    return this.conversations.get(id);
  }

  saveMessage(conversationId, role, content) {
    const message = {
      id: crypto.randomUUID(),
      role,
      content,
      conversationId,
      createdAt: new Date().toISOString(),
    };
    this.messages.get(conversationId).push(message);
    const conversation = this.conversations.get(conversationId);
    if (conversation) conversation.updatedAt = message.createdAt;
    return message;
  }

  history(conversationId) {
    return [...(this.messages.get(conversationId) || [])];
  }
}

// ---------------------------------------------------------------------------------------------
// LLM provider (OpenAI-compatible chat completions, streamed)

class AiProvider {
  constructor({ baseURL, apiKey, model, timeoutMs }) {
    this.client = new OpenAI({ baseURL, apiKey, timeout: timeoutMs });
    this.model = model;
  }

  // Fold system messages into the first user turn, as the seed does for Gemini.
  static format(messages) {
    const system = messages.filter((m) => m.role === 'system').map((m) => m.content);
    const turns = messages.filter((m) => m.role !== 'system').map((m) => ({ role: m.role, content: m.content }));
    if (system.length > 0) {
      const first = turns.findIndex((m) => m.role === 'user');
      if (first >= 0) turns[first] = { ...turns[first], content: `${system.join('\n')}\n\n${turns[first].content}` };
    }
    return turns;
  }

  async *streamChat(messages, signal) {
    const stream = await this.client.chat.completions.create(
      { model: this.model, messages: AiProvider.format(messages), stream: true },
      { signal },
    );
    for await (const chunk of stream) {
      const text = chunk.choices?.[0]?.delta?.content;
      if (text) yield text;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Chat service

class ChatService {
  constructor(store, ai) {
    this.store = store;
    this.ai = ai;
  }

  createConversation(userId, title) {
    return this.store.createConversation(userId, title);
  }

  // The conversation, if it exists and belongs to this user; otherwise 404 (never reveal another user's).
  getOwnConversation(userId, conversationId) {
    const conversation = this.store.findConversation(conversationId);
    if (!conversation || conversation.userId !== userId) throw new HttpError(404, 'Conversation not found');
    return conversation;
  }

  async *streamResponse(conversationId, userMessage, signal) {
    this.store.saveMessage(conversationId, 'user', userMessage);
    const history = this.store.history(conversationId).map((m) => ({ role: m.role, content: m.content }));

    let fullResponse = '';
    for await (const chunk of this.ai.streamChat(history, signal)) {
      fullResponse += chunk;
      yield chunk;
    }
    this.store.saveMessage(conversationId, 'assistant', fullResponse);
  }
}

// ---------------------------------------------------------------------------------------------
// Middleware

function jwtAuth(secret) {
  return (req, res, next) => {
    const header = req.get('authorization') || '';
    const [scheme, token] = header.split(' ');
    if (scheme !== 'Bearer' || !token) return next(new HttpError(401, 'Missing bearer token'));
    try {
      const payload = jwt.verify(token, secret, { algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || payload.sub === '') {
        return next(new HttpError(401, 'Token has no subject'));
      }
      req.user = { id: payload.sub };
      return next();
    } catch {
      return next(new HttpError(401, 'Invalid or expired token'));
    }
  };
}

// Fixed-window limiter per user (the seed's ThrottlerGuard: 10 requests per minute).
function rateLimit({ max, windowMs }) {
  const windows = new Map(); // userId -> {start, count}
  return (req, res, next) => {
    const now = Date.now();
    const key = req.user.id;
    let entry = windows.get(key);
    if (!entry || now - entry.start >= windowMs) {
      entry = { start: now, count: 0 };
      windows.set(key, entry);
    }
    entry.count += 1;
    if (entry.count > max) {
      res.set('Retry-After', String(Math.ceil((entry.start + windowMs - now) / 1000)));
      return next(new HttpError(429, 'Too many requests, please slow down'));
    }
    return next();
  };
}

function requireString(body, field) {
  const value = body?.[field];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new HttpError(400, `${field} must be a non-empty string`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// App

function sse(res, payload) {
  res.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
}

function createApp({ chat, jwtSecret, limits }) {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json());

  const router = express.Router();
  router.use(jwtAuth(jwtSecret));

  router.post('/conversation', (req, res) => {
    const title = requireString(req.body, 'title');
    const conversation = chat.createConversation(req.user.id, title);
    res.status(201).json(conversation);
  });

  router.post('/stream', rateLimit(limits), async (req, res) => {
    const message = requireString(req.body, 'message');
    const conversationId = req.body.conversationId;
    if (typeof conversationId !== 'string' || !UUID_RE.test(conversationId)) {
      throw new HttpError(400, 'conversationId must be a UUID');
    }
    chat.getOwnConversation(req.user.id, conversationId);

    res.status(200);
    res.set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();

    // Stop the LLM request when the client goes away.
    const upstream = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) upstream.abort();
    });

    try {
      for await (const chunk of chat.streamResponse(conversationId, message, upstream.signal)) {
        sse(res, { content: chunk });
      }
      sse(res, '[DONE]');
    } catch (error) {
      if (upstream.signal.aborted) return;
      console.error(`stream for conversation ${conversationId} failed:`, error?.message || error);
      sse(res, { error: 'The AI provider failed to answer. Please try again.' });
    }
    res.end();
  });

  app.use('/chat', router);

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
      sse(res, { error: message });
      res.end();
      return;
    }
    res.status(status).json({ statusCode: status, message });
  });

  return app;
}

// ---------------------------------------------------------------------------------------------

const store = new ChatStore();
const chat = new ChatService(store, new AiProvider(config.ai));
const app = createApp({ chat, jwtSecret: config.jwtSecret, limits: config.rateLimit });

const server = app.listen(config.port, config.host, () => {
  const { port } = server.address();
  console.log(`conversations_express listening on http://${config.host}:${port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
