import { Body, Controller, Get, HttpCode, Post, UseGuards } from '@nestjs/common';
import { Session, SessionGuard, type SessionObject } from 'nestjs-session-sync';

declare module 'nestjs-session-sync' {
  interface SessionData { userId?: string }
}

@Controller()
export class AuthController {
  @Post('login')
  async login(@Session() session: SessionObject, @Body() body: { username: string }) {
    await session.rotateId(); // a new id on sign-in: no session fixation
    session.userId = body.username;
    return { userId: session.userId };
  }

  @UseGuards(SessionGuard)
  @Get('profile')
  profile(@Session('userId') userId: string) {
    return { userId };
  }

  @Post('logout')
  @HttpCode(204)
  logout(@Session() session: SessionObject) {
    return session.destroy();
  }
}
