import { describe, expect, it } from "vitest";
import { render } from "@testing-library/react";
import { Sparkline, sparkPoints } from "./Sparkline";

describe("sparkPoints", () => {
  it("scales values into the box, top is max", () => {
    expect(sparkPoints([0, 5, 10], 10, 100, 50)).toBe("0.0,50.0 50.0,25.0 100.0,0.0");
    expect(sparkPoints([20], 10, 100, 50)).toBe("0.0,0.0");
    expect(sparkPoints([], 10, 100, 50)).toBe("");
  });
  it("renders an SVG line with a label", () => {
    const { getByRole } = render(<Sparkline values={[1, 2]} label="load" />);
    expect(getByRole("img").getAttribute("aria-label")).toBe("load");
  });
});
