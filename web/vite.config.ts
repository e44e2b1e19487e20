import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The build goes into the Go package that embeds it. The directory keeps
// its committed placeholder, so it is not emptied; `npm run build` removes
// the previous build's files first.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../internal/dashboard/dist",
    emptyOutDir: false,
    // No inline scripts or styles: everything is a file the CSP allows.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    // xterm.js is most of the bundle; one file is fine for a local tool.
    chunkSizeWarningLimit: 1000,
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
