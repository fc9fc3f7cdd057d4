'use strict';

// Conversation stream with heartbeats (seed 004, contracts.md §5) on Fastify.
//
//   POST /api/v1/chat/conversations                 {} or {"title"}  -> 201 the conversation
//   POST /api/v1/chat/conversations/:id/messages    {"content"}      -> 201 the stored user message
//   GET  /api/v1/chat/conversations/:id/stream                       -> SSE: the answer to the latest user message
//
// Auth: an HS256 JWT (`sub` = user id) as `Authorization: Bearer` or `?access_token=` (EventSource).
// Storage is in memory. The LLM is any OpenAI-compatible server (OPENAI_BASE_URL).

const crypto = require('node:crypto');
const Fastify = require('fastify');
const cors = require('@fastify/cors');
const jwt = require('jsonwebtoken');
const OpenAI = require('openai');

const PORT = Number(process.env.PORT ?? 3000);
const HOST = process.env.HOST ?? '127.0.0.1';
const JWT_SECRET = process.env.JWT_SECRET ?? 'dev-secret';
const HEARTBEAT_INTERVAL_MS = Number(process.env.HEARTBEAT_INTERVAL_MS ?? 30000);
const UPSTREAM_TIMEOUT_MS = Number(process.env.UPSTREAM_TIMEOUT_MS ?? 60000);
const OPENAI_MODEL = process.env.OPENAI_MODEL ?? 'gpt-4';
const CORS_ORIGINS = (process.env.CORS_ORIGINS ?? 'http://localhost:19006,exp://192.168.1.100:8081')
  .split(',')
  .map((origin) => origin.trim())
  .filter(Boolean);
const SYSTEM_PROMPT = 'You are a helpful sports betting assistant.';

const openai = new OpenAI({
  apiKey: process.env.OPENAI_API_KEY ?? 'not-needed',
  baseURL: process.env.OPENAI_BASE_URL,
  timeout: UPSTREAM_TIMEOUT_MS,
});

// ---------------------------------------------------------------------------------------------------------
// Storage

/** id -> {id, userId, title, createdAt, updatedAt, messages: [{id, conversationId, role, content, createdAt}]} */
const conversations = new Map();

function createConversation(userId, title) {
  const now = new Date().toISOString();
  const conversation = {
    id: crypto.randomUUID(),
    userId,
    title: title ?? 'New conversation',
    createdAt: now,
    updatedAt: now,
    messages: [],
  };
  conversations.set(conversation.id, conversation);
  return conversation;
}

function saveMessage(conversation, role, content) {
  const message = {
    id: crypto.randomUUID(),
    conversationId: conversation.id,
    role,
    content,
    createdAt: new Date().toISOString(),
  };
  conversation.messages.push(message);
  conversation.updatedAt = message.createdAt;
  return message;
}

function publicConversation(conversation) {
  const { messages, ...rest } = conversation;
  return rest;
}

/** The latest user message and every message before it, as chat-completion messages. */
function promptFor(conversation) {
  let last = -1;
  conversation.messages.forEach((message, index) => {
    if (message.role === 'user') last = index;
  });
  if (last < 0) return null;
  return conversation.messages.slice(0, last + 1).map(({ role, content }) => ({ role, content }));
}

// A bet recommendation: the answer mentions a bet or odds, as whole words ("better" is not a bet).
function extractBetRecommendation(content) {
  if (/\b(bet|odds)\b/i.test(content)) {
    return { id: `bet-${Date.now()}`, odds: 2.5 };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// App

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } });

app.register(cors, {
  origin: CORS_ORIGINS,
  credentials: true,
  exposedHeaders: ['Content-Type', 'Cache-Control', 'Connection'],
});

// JWT from the Authorization header, or from ?access_token= for a browser's EventSource.
app.decorateRequest('userId', null);
async function authenticate(request, reply) {
  let token = request.query?.access_token;
  if (!token) {
    const header = request.headers.authorization ?? '';
    if (header.startsWith('Bearer ')) token = header.slice('Bearer '.length).trim();
  }
  if (!token) {
    return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'Missing access token' });
  }
  try {
    const payload = jwt.verify(token, JWT_SECRET, { algorithms: ['HS256'] });
    if (!payload.sub) throw new Error('token has no subject');
    request.userId = String(payload.sub);
  } catch {
    return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'Invalid or expired access token' });
  }
}

function notFound(reply) {
  return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'Conversation not found' });
}

/** The caller's conversation, or null after answering 404 (unknown id, or another user's). */
function ownConversation(request, reply) {
  const conversation = conversations.get(request.params.id);
  if (!conversation || conversation.userId !== request.userId) {
    notFound(reply);
    return null;
  }
  return conversation;
}

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', format: 'uuid' } },
};

app.register(
  async (api) => {
    api.addHook('onRequest', authenticate);

    api.post(
      '',
      {
        schema: {
          body: {
            type: 'object',
            properties: { title: { type: 'string', minLength: 1, maxLength: 200 } },
          },
        },
      },
      async (request, reply) => {
        const conversation = createConversation(request.userId, request.body?.title);
        return reply.code(201).send(publicConversation(conversation));
      },
    );

    api.post(
      '/:id/messages',
      {
        schema: {
          params: idParams,
          body: {
            type: 'object',
            required: ['content'],
            properties: { content: { type: 'string', minLength: 1 } },
          },
        },
      },
      async (request, reply) => {
        const conversation = ownConversation(request, reply);
        if (!conversation) return reply;
        const message = saveMessage(conversation, 'user', request.body.content);
        return reply.code(201).send(message);
      },
    );

    api.get('/:id/stream', { schema: { params: idParams } }, async (request, reply) => {
      const conversation = ownConversation(request, reply);
      if (!conversation) return reply;
      const prompt = promptFor(conversation);
      if (!prompt) {
        return reply
          .code(409)
          .send({ statusCode: 409, error: 'Conflict', message: 'The conversation has no user message to answer' });
      }
      reply.hijack();
      await streamConversation(request, reply.raw, conversation, prompt);
    });
  },
  { prefix: '/api/v1/chat/conversations' },
);

app.get('/health', async () => ({ status: 'ok' }));

// ---------------------------------------------------------------------------------------------------------
// The stream

function createEvent(type, data = {}) {
  return `data: ${JSON.stringify({ type, timestamp: new Date().toISOString(), ...data })}\n\n`;
}

async function streamConversation(request, res, conversation, prompt) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write(createEvent('connected', { conversationId: conversation.id }));

  const heartbeat = setInterval(() => res.write(createEvent('heartbeat')), HEARTBEAT_INTERVAL_MS);
  const abort = new AbortController();
  res.on('close', () => {
    clearInterval(heartbeat);
    abort.abort();
  });

  try {
    const stream = await openai.chat.completions.create(
      {
        model: OPENAI_MODEL,
        messages: [{ role: 'system', content: SYSTEM_PROMPT }, ...prompt],
        stream: true,
      },
      { signal: abort.signal },
    );

    let fullContent = '';
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta?.content || '';
      if (content) {
        fullContent += content;
        res.write(createEvent('llm_chunk', { content }));
      }
    }

    res.write(createEvent('llm_complete', { content: fullContent }));
    saveMessage(conversation, 'assistant', fullContent);

    const bet = extractBetRecommendation(fullContent);
    if (bet) {
      res.write(
        createEvent('system', {
          message: 'New bet recommendation available',
          metadata: { betId: bet.id, odds: bet.odds },
        }),
      );
    }
  } catch (error) {
    if (!abort.signal.aborted) {
      request.log.error({ err: error }, 'LLM stream failed');
      res.write(createEvent('error', { message: 'Failed to generate response' }));
    }
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}

app.listen({ port: PORT, host: HOST }).then((address) => {
  // The test harness reads the listening address from stdout.
  console.log(`listening on ${address}`);
});
