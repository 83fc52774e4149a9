// A small Colyseus 0.18 room server for the game-loadtest test-suite (see README.md beside it).
//
// Usage: node server.mjs PORT
// Environment: JWT_SECRET (required), PATCH_MS (state patch interval, default 50),
// SEAT_SECONDS (seat reservation lifetime, default 2), RECONNECT_SECONDS (how long a dropped
// client's seat is held in the room "arena", default 10), MAX_CLIENTS (per room, default 64).
//
// Rooms: "arena" allows reconnection; "arena_norc" does not (a drop frees the seat, so a
// client must matchmake again). Both change their state every patch interval so that a patch
// goes out on every one, which is what lets the harness compare the measured rate with PATCH_MS.
import { defineRoom, defineServer, Room } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { schema, t } from "@colyseus/schema";
import { JWT } from "@colyseus/auth";

const port = Number(process.argv[2] || 2567);
const PATCH_MS = Number(process.env.PATCH_MS || 50);
const SEAT_SECONDS = Number(process.env.SEAT_SECONDS || 2);
const RECONNECT_SECONDS = Number(process.env.RECONNECT_SECONDS || 10);
const MAX_CLIENTS = Number(process.env.MAX_CLIENTS || 64);
if (!process.env.JWT_SECRET) {
  console.error("JWT_SECRET is required");
  process.exit(2);
}
JWT.settings.secret = process.env.JWT_SECRET;

const State = schema({ tick: t.number(), players: t.number(), inputs: t.number() });

class Arena extends Room {
  maxClients = MAX_CLIENTS;
  seatReservationTimeout = SEAT_SECONDS;
  reconnectSeconds = RECONNECT_SECONDS;

  static async onAuth(token) {
    return await JWT.verify(token);
  }

  onCreate() {
    this.state = new State();
    this.patchRate = PATCH_MS;
    this.setSimulationInterval(() => {
      this.state.tick += 1;
    }, PATCH_MS);
    this.onMessage("input", () => {
      this.state.inputs += 1;
    });
  }

  onJoin() {
    this.state.players = this.clients.length;
  }

  async onDrop(client) {
    if (this.reconnectSeconds > 0) {
      await this.allowReconnection(client, this.reconnectSeconds);
    }
  }

  onReconnect() {
    this.state.players = this.clients.length;
  }

  onLeave() {
    this.state.players = this.clients.length;
  }
}

class ArenaNoReconnect extends Arena {
  reconnectSeconds = 0;
}

const server = defineServer({
  transport: new WebSocketTransport({ pingInterval: 5000, pingMaxRetries: 3 }),
  auth: {},
  greet: false,
  rooms: {
    arena: defineRoom(Arena),
    arena_norc: defineRoom(ArenaNoReconnect),
  },
});

await server.listen(port, "127.0.0.1");
console.log(`colyseus-target listening on 127.0.0.1:${port}`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
