import { Body, Controller, Get, HttpCode, Param, Post, Put, UseGuards } from '@nestjs/common';
import { IsDefined, Matches } from 'class-validator';
import { Session, SessionGuard } from '../lib/index.js';

export class PrefParams {
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'key must be 1 to 64 letters, digits, "_" or "-"' })
  key!: string;
}

export class PrefBody {
  @IsDefined()
  value!: unknown;
}

@Controller()
export class DemoController {
  @Get('profile')
  @UseGuards(SessionGuard)
  profile(@Session('userId') userId: string) {
    return { userId };
  }

  @Post('visits')
  @HttpCode(200)
  visits(@Session() session: Session) {
    session.visits = (session.visits ?? 0) + 1;
    return { visits: session.visits };
  }

  @Put('prefs/:key')
  setPref(@Param() { key }: PrefParams, @Body() { value }: PrefBody, @Session() session: Session) {
    session[`pref:${key}`] = value;
    return { ok: true };
  }

  @Get('session')
  data(@Session() session: Session) {
    return { data: session.toJSON() };
  }
}
